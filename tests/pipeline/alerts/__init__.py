# A package, unlike tests/pipeline/ itself: pytest imports these files as alerts.test_*, so their names may repeat
# those of tests/pipeline/ (alerts/test_cli.py next to a test_cli.py for pipeline/cli.py).
