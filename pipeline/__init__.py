"""newsflow's stream pipeline: settings, message schemas, the Faust app, its agents and the sink."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
