"""newsflow's feed connectors: RSS/Atom/JSON feeds -> news.raw."""
