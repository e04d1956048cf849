"""Limit counters in Redis, shared by a fleet of gateways.

One ``EVALSHA`` per reserve and one per settle. The reserve script reads every counter, checks every
charge, and only if all have room writes them all: all or nothing, atomic because Redis runs a
script without interleaving other commands. The arithmetic mirrors :mod:`garrison.gateway.limits`;
the clock is the Redis server's ``TIME``, so gateways whose clocks disagree still share windows.

Keys (all under ``prefix``): ``<counter>`` holds a GCRA time (string), a budget (hash ``s`` window
start, ``u`` used) or concurrency leases (sorted set, score = lease expiry); ``pending:<id>`` marks a
reservation not yet settled. Every key carries an expiry, so idle counters vanish on their own.
A script touches several keys, so on Redis Cluster give ``key_prefix`` a hash tag (``{lim}:``): all
counters then live on one shard.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from garrison.gateway.limits import (
    BUDGETS,
    Charge,
    LimitExceeded,
    LimitsBackendError,
    Quota,
    Reservation,
    needs_settle,
    new_reservation_id,
    refund,
)

# KEYS: one per charge, then the pending marker. ARGV: id, lease seconds, n, then per charge
# kind, limit, window, amount. Returns {"ok", start1, remaining1, reset1, ...} or
# {"deny", index, remaining, reset, retry_after}; -1 stands for infinity.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rid, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local eps = 1e-9
local function f(x) return string.format('%.17g', x) end
local plan, out, needs_settle = {}, {'ok'}, false
for i = 1, n do
  local kind, limit = ARGV[4 * i], tonumber(ARGV[4 * i + 1])
  local window, amount = tonumber(ARGV[4 * i + 2]), tonumber(ARGV[4 * i + 3])
  local key = KEYS[i]
  local ok, a, b, remaining, reset, retry = false, 0, 0, 0, 0, 0
  if kind == 'requests' then
    local tat = tonumber(redis.call('GET', key) or '0')
    local interval = window / limit
    local base = math.max(tat, now)
    local new_tat = base + interval * amount
    if new_tat - now <= window + window * eps then
      ok, a = true, new_tat
      remaining = math.floor((window - (new_tat - now)) / interval + eps)
      reset = new_tat - now
    else
      remaining = math.max(0, math.floor((window - (base - now)) / interval + eps))
      reset, retry = base - now, new_tat - window - now
    end
  elseif kind == 'concurrent' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', f(now))
    local held = redis.call('ZCARD', key)
    ok = held + amount <= limit
    if ok then remaining = limit - held - amount else remaining = math.max(0, limit - held) end
    retry = 1
  else
    local v = redis.call('HMGET', key, 's', 'u')
    local start, used = tonumber(v[1] or '0'), tonumber(v[2] or '0')
    local current = 0
    if window > 0 then
      current = math.floor(now / window) * window
      if start ~= current then used = 0 end
      reset = current + window - now
    else
      reset = -1
    end
    local after = used + amount
    a = current
    if used < limit and after <= limit * (1 + eps) then
      ok, b, remaining = true, after, math.max(0, limit - after)
    else
      remaining = math.max(0, limit - used)
      if amount <= limit then retry = reset else retry = -1 end
    end
  end
  if not ok then return {'deny', tostring(i), f(remaining), f(reset), f(retry)} end
  plan[i] = {kind, a, b, window}
  if kind ~= 'requests' then needs_settle = true end
  if kind == 'tokens' or kind == 'cost' then out[#out + 1] = f(a) else out[#out + 1] = '0' end
  out[#out + 1] = f(remaining)
  out[#out + 1] = f(reset)
end
local lease_ms = math.ceil(lease * 1000)
for i = 1, n do
  local kind, a, b, window = plan[i][1], plan[i][2], plan[i][3], plan[i][4]
  local key = KEYS[i]
  if kind == 'requests' then
    redis.call('SET', key, f(a), 'PX', math.ceil((a - now) * 1000) + 1000)
  elseif kind == 'concurrent' then
    redis.call('ZADD', key, f(now + lease), rid)
    redis.call('PEXPIRE', key, lease_ms + 1000)
  else
    redis.call('HSET', key, 's', f(a), 'u', f(b))
    if window > 0 then redis.call('PEXPIREAT', key, math.ceil((a + window) * 1000) + 1000) end
  end
end
if needs_settle then redis.call('SET', KEYS[n + 1], '1', 'PX', lease_ms) end
return out
"""

# KEYS: one per charge, then the pending marker. ARGV: id, n, then per charge kind, window start,
# refund. Returns 1 when it settled, 0 when already settled or expired.
_SETTLE = """
local n = tonumber(ARGV[2])
if redis.call('DEL', KEYS[n + 1]) == 0 then return 0 end
for i = 1, n do
  local kind, start, back = ARGV[3 * i], tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  if kind == 'concurrent' then
    redis.call('ZREM', KEYS[i], ARGV[1])
  elseif back ~= 0 then
    local v = redis.call('HMGET', KEYS[i], 's', 'u')
    if v[1] and tonumber(v[1]) == start then
      redis.call('HSET', KEYS[i], 'u', string.format('%.17g', math.max(0, tonumber(v[2]) - back)))
    end
  end
end
return 1
"""


def _num(raw: Any) -> float:
    value = float(raw)
    return math.inf if value == -1 else value


class RedisBackend:
    """See :class:`garrison.gateway.limits.LimitBackend`."""

    def __init__(
        self,
        url: str,
        *,
        lease_s: float = 300.0,
        prefix: str = "garrison:limits:",
        timeout_s: float = 0.5,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self._lease = repr(float(lease_s))
        self._prefix = prefix
        # A blocking pool: a burst of requests queues for a connection instead of failing with "too
        # many connections". Waiting in that queue is load, not an outage: it may take up to 20 times
        # the per-call timeout (a busy 2-core host runs hundreds of requests behind 64 connections),
        # while a server that does not answer still fails each call after timeout_s.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=max(5.0, 20 * timeout_s),
            socket_timeout=timeout_s,
            # connecting is slower than a call (TCP, then the handshake) and a burst opens many at
            # once: give it 4 times the call timeout, at least 2 s
            socket_connect_timeout=max(2.0, 4 * timeout_s),
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._client: Redis = Redis.from_pool(pool)
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)

    def _error(self, exc: BaseException, what: str) -> LimitsBackendError:
        return LimitsBackendError(
            f"limits backend Redis failed during {what}: {type(exc).__name__}: {exc}",
            hint="check that the Redis server in limits_backend.url is up and reachable",
        )

    async def reserve(self, charges: Sequence[Charge]) -> Reservation:
        """See :meth:`garrison.gateway.limits.LimitBackend.reserve`."""
        rid = new_reservation_id()
        prefix = self._prefix
        keys = [prefix + c.key for c in charges]
        keys.append(f"{prefix}pending:{rid}")
        args: list[str | float] = [rid, self._lease, len(charges)]
        for c in charges:
            args.extend((c.kind.value, repr(c.limit), repr(c.window_s), repr(c.amount)))
        try:
            reply = await self._reserve(keys=keys, args=args)
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._error(exc, "reserve") from exc
        if reply[0] in (b"deny", "deny"):
            charge = charges[int(reply[1]) - 1]
            raise LimitExceeded(
                charge, remaining=float(reply[2]), reset_s=_num(reply[3]), retry_after_s=_num(reply[4])
            )
        windows = tuple(float(reply[i]) for i in range(1, len(reply), 3))
        quotas = tuple(
            Quota(remaining=float(reply[i + 1]), reset_s=_num(reply[i + 2])) for i in range(1, len(reply), 3)
        )
        return Reservation(id=rid, charges=tuple(charges), windows=windows, quotas=quotas)

    async def settle(self, reservation: Reservation, actual: Mapping[str, float] | None = None) -> None:
        """See :meth:`garrison.gateway.limits.LimitBackend.settle`."""
        if not needs_settle(reservation.charges):
            return
        prefix = self._prefix
        keys = [prefix + c.key for c in reservation.charges]
        keys.append(f"{prefix}pending:{reservation.id}")
        args: list[str | float] = [reservation.id, len(reservation.charges)]
        for c, start in zip(reservation.charges, reservation.windows, strict=True):
            back = refund(c.amount, actual, c.key) if c.kind in BUDGETS else 0.0
            args.extend((c.kind.value, repr(start), repr(back)))
        try:
            await self._settle(keys=keys, args=args)
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._error(exc, "settle") from exc

    async def warm(self, connections: int = 8) -> None:
        """Open a few connections and load the scripts before the first request needs them."""
        try:
            await asyncio.gather(*(self._client.ping() for _ in range(connections)))
            await self._client.script_load(_RESERVE)
            await self._client.script_load(_SETTLE)
        except (RedisError, OSError) as exc:
            raise self._error(exc, "start-up") from None

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
