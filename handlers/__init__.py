"""Bolt listeners by Slack surface: ``commands`` (the ``/rollback`` verb table), ``actions``
(buttons), ``views`` (forms), ``home`` (App Home), plus ``delivery`` (once per delivery),
``errors`` (the last line of defence), ``twilio`` (SMS webhooks) and ``ids``. Each listener
acks, parses and makes one call into ``bot/``; ``bot.app.build_app`` installs them."""
