"""Below everything else: logs, metrics, the clock, background tasks, the embedded Redis
server and the metrics of several processes."""
