"""The traffic router seam and its two routers: the front door's KeyValueStore, weighted Route 53."""
