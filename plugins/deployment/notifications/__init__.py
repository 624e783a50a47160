"""Notifications: the channels (GitHub, Slack, email, status page, PagerDuty), send-once, escaping."""
