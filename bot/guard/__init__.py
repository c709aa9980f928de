"""The automatic guard (issue #14): watch each new release and roll it back when it breaks."""
