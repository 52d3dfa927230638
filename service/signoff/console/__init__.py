"""The reviewer console: a single-page app built from clients/ into `static/`, served on the
HTTP port (`http_listen`) next to the Connect API it calls (see signoff.serving.http)."""
