"""The gateway's HTTP routes, one router per resource, composed by ``app.create_app``.

A route parses the request, asks :mod:`..access` whether the caller may, and calls the
service layer (:mod:`..service`); none holds SQL or compares roles itself. (Checks a service
method needs whichever route calls it — only the order's seller asks about an order, only a
message's recipient marks it — are made there, with the same rules.)
"""
