"""kaelix.connect: bridges from kaelix streams to distributed streaming engines.

``kaelix.connect.nats`` holds kaelix streams in NATS JetStream (``pip install
"kaelix[nats]"``); see docs/connect.md. This package re-exports nothing, so importing it
costs nothing and needs no optional dependency.
"""
