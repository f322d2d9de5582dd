from pipeline.backoff import kafka_start_delay


def test_kafka_start_delay_doubles_from_one_second_to_thirty_without_jitter() -> None:
    assert [kafka_start_delay(n) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
