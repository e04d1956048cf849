"""The security gateway: authenticated, authorized, rate-limited, filtered and audited access to ML
and LLM endpoints (``garrison gateway serve``).

The request pipeline is a fixed sequence of steps (see ``ARCHITECTURE.md``): authenticate →
authorize → limits → validate → input scanners → upstream → output controls and scanners. Each
step yields a :class:`~garrison.gateway.types.Decision`; a step that raises denies the request.
"""
