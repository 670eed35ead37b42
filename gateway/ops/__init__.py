"""Below everything else: logs, metrics (the hot path's tally, the Prometheus side, a
scrape's exposition, the metrics of several processes), the clock, background tasks, the
embedded Redis server."""
