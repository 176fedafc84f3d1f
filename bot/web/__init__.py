"""The Mini App "Pick colours": `paintbot-web`, the page and its JSON API (bot/web/server.py)."""
