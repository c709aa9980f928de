"""The Kubernetes adapter's parts; other code imports them from bot.adapters.kubernetes."""
