"""One AMQP 0-9-1 connection of the amqp driver (``Wire``): the socket loop, heartbeats,
publishing with confirms, getting, acking and requeueing.

pika parses the URL (credentials, virtual host, TLS options) and encodes and decodes the
rarer methods; the frames of the busy path are ``codec``'s. pika's connection classes hand
every frame of a message to the socket on its own and, in confirm mode, wait for the
broker after each publish. Here a message's frames, or a whole batch of messages, go out
in one write, confirms are counted by sequence number and waited for once per batch, and
deliveries are parsed from each frame's own bytes (a damaged one drops the connection:
WireError).

Channel 1 carries the work; channel 2 runs probes that may fail (a passive declare of a
delay queue that has expired), because the broker closes a channel on such an error and,
on channel 1, that would hand back every message the worker holds. Any error on channel 1
or on the connection makes the Wire unusable: the driver drops it and opens a new one.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading
import time
from collections import deque
from typing import Any, NamedTuple

from .codec import (
    ACCESS_REFUSED,
    BASIC_ACK,
    BASIC_CANCEL,
    BASIC_DELIVER,
    BASIC_GET_EMPTY,
    BASIC_GET_OK,
    BASIC_NACK,
    BASIC_RETURN,
    CHANNEL_CLOSE,
    CONNECTION_BLOCKED,
    CONNECTION_CLOSE,
    CONNECTION_CLOSE_OK,
    CONNECTION_UNBLOCKED,
    CONTENT_HEAD,
    END,
    FRAME_BODY,
    FRAME_END,
    FRAME_HEAD,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_NAMES,
    FRAME_OVERHEAD,
    METHOD_ID,
    METHOD_NAMES,
    PROTOCOL_HEADER,
    REPLY_SUCCESS,
    FrameError,
    ack_frame,
    content_body_size,
    decode_confirm,
    decode_content_method,
    decode_properties,
    message_frames,
    method_label,
    publish_frame,
    read_method_id,
    requeue_frame,
)

logger = logging.getLogger(__name__)

CONTROL = 0
"""The channel of the connection's own methods, and of heartbeats."""
WORK = 1
PROBE = 2

_HEARTBEAT = FRAME_HEAD.pack(FRAME_HEARTBEAT, CONTROL, 0) + END
DEFAULT_FRAME_MAX = 131072
"""The frame_max of a connection when neither the broker nor the URL limits it."""
RECEIVE_SIZE = 262144

_EMPTY = object()
"""The reply to a basic.get that found nothing."""


def _pika() -> Any:
    import pika
    return pika


def address(params: Any) -> str:
    """``host:port`` of a connection's parameters (an IPv6 address in brackets)."""
    host = str(params.host)
    return f"[{host}]:{params.port}" if ":" in host else f"{host}:{params.port}"


class WireError(Exception):
    """The connection is gone or unusable: closed by the broker, lost, refused, or timed
    out. ``code`` is the broker's reply code when it said why (403, 404, 406, 320...)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class ProbeError(Exception):
    """The broker closed the probe channel (a passive declare of a missing queue, 404)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Delivery:
    """A message the broker handed over: by basic.deliver, basic.get-ok or basic.return."""

    __slots__ = ("tag", "redelivered", "routing_key", "message_id", "priority", "headers",
                 "body", "reply", "left")

    def __init__(self, tag: int, redelivered: bool, routing_key: str) -> None:
        self.tag = tag
        self.redelivered = redelivered
        self.routing_key = routing_key
        self.message_id: str | None = None
        self.priority: int | None = None
        self.headers: dict[str, Any] = {}
        self.body = b""
        self.reply = ""
        """For a returned message: why the broker could not route it."""
        self.left = -1
        """For basic.get-ok: the messages ready in the queue after this one."""


class QueueCounts(NamedTuple):
    """What queue.declare-ok tells of a queue."""

    messages: int
    """Messages ready in it."""
    consumers: int


class Wire:
    """One AMQP connection (see the module docstring)."""

    def __init__(self, params: Any, *, heartbeat: int | None, connect_timeout: float,
                 rpc_timeout: float, name: str, host_index: int = 0) -> None:
        self.params = params
        self.address = address(params)
        self.host_index = host_index
        """Which of the driver's hosts this connection goes to."""
        self.requested_heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.rpc_timeout = rpc_timeout
        self.name = name
        self.sock: Any = None
        self.heartbeat = 0
        self.frame_max = DEFAULT_FRAME_MAX
        self.header_room = self.frame_max - FRAME_OVERHEAD - CONTENT_HEAD
        """Most bytes of properties a message may have on this connection."""
        self.dead: str | None = None
        self.blocked: str | None = None
        self.deliveries: deque[Delivery] = deque()
        self.returned: list[Delivery] = []
        self.consumer_tag: str | None = None
        self.cancelled = False
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._replies: dict[int, Any] = {}
        self._probe_open = False
        self._probe_error: ProbeError | None = None
        self._content: Delivery | None = None
        self._content_kind = 0
        self._body: list[bytes] = []
        self._left = 0
        self._published = 0
        self._settled = 0
        self._settled_single: set[int] = set()
        self._refused: list[int] = []
        self._publish_heads: dict[tuple[str, bool], bytes] = {}
        self._last_send = self._last_recv = time.monotonic()
        self._keeper: threading.Thread | None = None
        self._stop_keeper = threading.Event()

    # -- opening and closing ---------------------------------------------------------

    def open(self) -> Wire:
        pika = _pika()
        params = self.params
        try:
            sock = socket.create_connection((params.host, params.port),
                                            timeout=self.connect_timeout)
        except OSError as exc:
            raise WireError(f"cannot connect to {self.address}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            if params.ssl_options is not None:
                options = params.ssl_options
                sock = options.context.wrap_socket(
                    sock, server_hostname=options.server_hostname or params.host)
            self.sock = sock
            self._sendall(PROTOCOL_HEADER)
            start = self._wait_reply(CONTROL, self.connect_timeout)
            mechanism, response = params.credentials.response_for(start)
            if mechanism is None:
                raise WireError(f"the broker offers none of our login mechanisms "
                                f"({start.mechanisms!r})", ACCESS_REFUSED)
            properties = {
                "product": "queue-core", "connection_name": self.name,
                "capabilities": {"publisher_confirms": True, "consumer_cancel_notify": True,
                                 "basic.nack": True, "connection.blocked": True,
                                 "authentication_failure_close": True}}
            self._method(CONTROL, pika.spec.Connection.StartOk(properties, mechanism,
                                                               response, params.locale))
            tune = self._wait_reply(CONTROL, self.connect_timeout)
            self.frame_max = min(tune.frame_max or DEFAULT_FRAME_MAX,
                                 params.frame_max or DEFAULT_FRAME_MAX)
            self.header_room = self.frame_max - FRAME_OVERHEAD - CONTENT_HEAD
            wanted = self.requested_heartbeat
            self.heartbeat = tune.heartbeat if wanted is None else wanted
            self._method(CONTROL, pika.spec.Connection.TuneOk(tune.channel_max,
                                                              self.frame_max, self.heartbeat))
            self._method(CONTROL, pika.spec.Connection.Open(params.virtual_host))
            self._wait_reply(CONTROL, self.connect_timeout)
            self._method(WORK, pika.spec.Channel.Open())
            self._wait_reply(WORK, self.connect_timeout)
            self._method(WORK, pika.spec.Confirm.Select())
            self._wait_reply(WORK, self.connect_timeout)
        except WireError:
            self._kill()
            raise
        except (OSError, ValueError) as exc:
            self._kill()
            raise WireError(f"cannot open an AMQP connection to {self.address}: "
                            f"{exc}") from exc
        self.sock.settimeout(None)
        return self

    def close(self) -> None:
        """Say goodbye politely, then close the socket. Safe to call twice."""
        self._stop_keeper.set()
        if self.sock is not None and self.dead is None:
            try:
                close = _pika().spec.Connection.Close(REPLY_SUCCESS, "bye", 0, 0)
                self._method(CONTROL, close)
                self._wait(lambda: self.dead is not None, 1.0)
            except (WireError, OSError):
                pass
        self._kill()

    def abandon(self) -> None:
        """Forget the socket without a word: it belongs to another process (after fork)."""
        self._stop_keeper.set()
        self.sock = None
        self.dead = "abandoned after fork"

    def _kill(self, reason: str = "closed") -> None:
        if self.dead is None:
            self.dead = reason
        self._stop_keeper.set()
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _fail(self, message: str, code: int = 0) -> WireError:
        self._kill(message)
        return WireError(message, code)

    def keep_alive(self) -> None:
        """Send heartbeats from a thread while the owner is busy elsewhere (running a job),
        so that the broker does not take a long job's connection for dead."""
        if self._keeper is None and self.heartbeat > 0:
            self._keeper = threading.Thread(target=self._keep, name=f"{self.name}-heartbeat",
                                            daemon=True)
            self._keeper.start()

    def _keep(self) -> None:
        interval = max(0.5, self.heartbeat / 4)
        while not self._stop_keeper.wait(interval):
            if time.monotonic() - self._last_send < self.heartbeat / 2:
                continue
            # Only when the owner is not using the socket: a TLS socket must not be read
            # and written by two threads at once, and a frame must not be cut in two.
            if not self._lock.acquire(blocking=False):
                continue
            try:
                sock = self.sock
                if sock is None:
                    return
                sock.sendall(_HEARTBEAT)
                self._last_send = time.monotonic()
            except OSError:
                return
            finally:
                self._lock.release()

    # -- socket ----------------------------------------------------------------------

    def _sendall(self, data: bytes) -> None:
        if self.sock is None:
            raise WireError(f"connection {self.dead or 'closed'}")
        with self._lock:
            try:
                if self.sock.gettimeout() is not None:
                    # A read leaves its timeout on the socket (0 when it only looked): a
                    # send that fills the socket's buffer must wait for the broker to read,
                    # not fail halfway through a frame.
                    self.sock.settimeout(None)
                self.sock.sendall(data)
            except OSError as exc:
                raise self._fail(f"connection lost while sending: {exc}") from exc
        self._last_send = time.monotonic()

    def _receive(self, timeout: float | None) -> bool:
        """Read what has arrived (waiting up to ``timeout``) and act on every complete
        frame; False if nothing came."""
        sock = self.sock
        if sock is None:
            raise WireError(f"connection {self.dead or 'closed'}")
        if self.heartbeat:
            if time.monotonic() - self._last_send >= self.heartbeat / 2:
                self._sendall(_HEARTBEAT)
            if timeout is None or timeout > self.heartbeat / 2:
                timeout = self.heartbeat / 2
        with self._lock:
            try:
                sock.settimeout(timeout)
                data = sock.recv(RECEIVE_SIZE)
            except (TimeoutError, BlockingIOError):
                data = None
            except OSError as exc:
                if type(exc).__name__ not in ("SSLWantReadError", "SSLWantWriteError"):
                    raise self._fail(f"connection lost: {exc}") from exc
                data = None
        if data is None:
            # Judged only after a read found nothing: while a job ran nobody read, and
            # the broker's heartbeats are waiting in the socket.
            silent = time.monotonic() - self._last_recv
            if self.heartbeat and silent > 2 * self.heartbeat + 1:
                raise self._fail(f"no sign of life from the broker for {silent:.0f}s "
                                 f"(heartbeat {self.heartbeat}s)")
            return False
        if not data:
            raise self._fail("connection closed by the broker")
        self._last_recv = time.monotonic()
        self._buf += data
        self._frames()
        return True

    def _wait(self, done: Any, timeout: float | None) -> bool:
        """Read until ``done()`` holds; False when ``timeout`` seconds pass first."""
        if done():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._receive(left)
            if done():
                return True
            if left == 0.0:
                return False

    def usable(self) -> bool:
        """Whether the connection still works, told without waiting: a connection that
        idled through a broker restart is found out before anything is written to it."""
        if self.sock is None:
            return False
        if time.monotonic() - self._last_recv < 1.0:
            return True
        try:
            ready, _, _ = select.select([self.sock], [], [], 0)
            if ready:
                self._receive(0)
        except (WireError, OSError, ValueError):
            self._kill("found closed")
            return False
        return self.sock is not None

    # -- frames in ---------------------------------------------------------------------

    def _frames(self) -> None:
        buf = self._buf
        size = len(buf)
        pos = 0
        kind = channel = 0
        try:
            while size - pos >= FRAME_OVERHEAD:
                kind, channel, length = FRAME_HEAD.unpack_from(buf, pos)
                start = pos + FRAME_HEAD.size
                end = start + length
                if end >= size:
                    break
                if buf[end] != FRAME_END:
                    raise self._fail("protocol error: bad frame end")
                pos = end + 1
                # Each frame is decoded from a copy of its own payload, so that nothing cut
                # short in it can be read from the frames after it.
                if kind == FRAME_BODY:
                    self._body_frame(bytes(buf[start:end]))
                elif kind == FRAME_METHOD:
                    self._method_frame(channel, bytes(buf[start:end]))
                elif kind == FRAME_HEADER:
                    self._header_frame(bytes(buf[start:end]))
                elif kind != FRAME_HEARTBEAT:
                    raise self._fail(f"protocol error: frame type {kind}")
        except (FrameError, IndexError, struct.error) as exc:
            # struct.error and IndexError too: whatever a damaged frame makes the decoding
            # raise, the connection is dropped with a WireError, never a raw exception.
            raise self._fail(f"protocol error: {FRAME_NAMES.get(kind, kind)} frame on "
                             f"channel {channel}: {exc}") from exc
        finally:
            del buf[:pos]

    def _method_frame(self, channel: int, payload: bytes) -> None:
        method_id = read_method_id(payload)
        if method_id == BASIC_DELIVER or method_id == BASIC_GET_OK or method_id == BASIC_RETURN:
            self._content_method(method_id, payload)
        elif method_id == BASIC_ACK or method_id == BASIC_NACK:
            tag, multiple = decode_confirm(method_id, payload)
            if method_id == BASIC_NACK:
                self._refused.extend(
                    [seq for seq in range(self._settled + 1, tag + 1)
                     if seq not in self._settled_single] if multiple else [tag])
            if multiple:
                if tag > self._settled:
                    self._settled = tag
            else:
                self._settled_single.add(tag)
            while self._settled + 1 in self._settled_single:
                self._settled += 1
                self._settled_single.discard(self._settled)
        elif method_id == BASIC_GET_EMPTY:
            self._replies[channel] = _EMPTY
        else:
            self._other_method(channel, method_id, payload)

    def _content_method(self, method_id: int, payload: bytes) -> None:
        """basic.deliver, basic.get-ok or basic.return: a message whose content follows."""
        if self._content is not None:
            raise FrameError(f"{METHOD_NAMES[method_id]} came while the content of the "
                             "message before it was incomplete")
        method = decode_content_method(method_id, payload)
        delivery = Delivery(method.tag, method.redelivered, method.routing_key)
        delivery.reply = method.reply
        delivery.left = method.left
        self._start_content(method_id, delivery)

    def _other_method(self, channel: int, method_id: int, payload: bytes) -> None:
        pika = _pika()
        known = pika.spec.methods.get(method_id)
        if known is None:
            raise FrameError(f"unknown method {method_label(method_id)}")
        method = known()
        try:
            method.decode(payload, METHOD_ID.size)
        except Exception as exc:
            # Whatever a cut or damaged method makes pika raise.
            raise FrameError(f"{method.NAME} does not decode ({type(exc).__name__}: "
                             f"{exc})") from exc
        if method_id == CONNECTION_CLOSE:
            try:
                self._method(CONTROL, pika.spec.Connection.CloseOk())
            except WireError:
                pass
            raise self._fail(f"the broker closed the connection: {method.reply_code} "
                             f"{method.reply_text}", method.reply_code)
        if method_id == CONNECTION_CLOSE_OK:
            self._kill("closed")
            return
        if method_id == CHANNEL_CLOSE:
            text = f"{method.reply_code} {method.reply_text}"
            if channel == PROBE:
                self._method(PROBE, pika.spec.Channel.CloseOk())
                self._probe_open = False
                self._probe_error = ProbeError(text, method.reply_code)
                return
            raise self._fail(f"the broker closed the channel: {text}", method.reply_code)
        if method_id == CONNECTION_BLOCKED:
            self.blocked = method.reason or "no reason given"
            logger.warning("%s: the broker blocks publishing: %s", self.name, self.blocked)
            return
        if method_id == CONNECTION_UNBLOCKED:
            self.blocked = None
            logger.info("%s: the broker accepts publishing again", self.name)
            return
        if method_id == BASIC_CANCEL:
            self.cancelled = True
            return
        self._replies[channel] = method

    def _start_content(self, method_id: int, delivery: Delivery) -> None:
        self._content = delivery
        self._content_kind = method_id
        self._body = []
        self._left = -1

    def _header_frame(self, payload: bytes) -> None:
        delivery = self._content
        if delivery is None:
            raise self._fail("protocol error: content header without a method")
        if self._left >= 0:
            raise FrameError("a second content header for one message")
        size = content_body_size(payload)
        properties = decode_properties(payload, CONTENT_HEAD)
        delivery.headers = properties.headers
        delivery.priority = properties.priority
        delivery.message_id = properties.message_id
        self._left = size
        if size == 0:
            self._content_done()

    def _body_frame(self, payload: bytes) -> None:
        if self._content is None or self._left < 0:
            raise self._fail("protocol error: content body without a header")
        if len(payload) > self._left:
            raise FrameError(f"{len(payload)} bytes where {self._left} were left of the "
                             "body its header announced")
        self._body.append(payload)
        self._left -= len(payload)
        if self._left <= 0:
            self._content_done()

    def _content_done(self) -> None:
        delivery, self._content = self._content, None
        assert delivery is not None
        body = self._body
        delivery.body = body[0] if len(body) == 1 else b"".join(body)
        if self._content_kind == BASIC_DELIVER:
            self.deliveries.append(delivery)
        elif self._content_kind == BASIC_GET_OK:
            self._replies[WORK] = delivery
        else:
            self.returned.append(delivery)

    # -- methods out -------------------------------------------------------------------

    def _method(self, channel: int, method: Any) -> None:
        self._sendall(_pika().frame.Method(channel, method).marshal())

    def _wait_reply(self, channel: int, timeout: float) -> Any:
        if not self._wait(lambda: channel in self._replies or (
                channel == PROBE and self._probe_error is not None), timeout):
            raise self._fail(f"no answer from the broker within {timeout:g}s")
        if channel == PROBE and self._probe_error is not None:
            error, self._probe_error = self._probe_error, None
            raise error
        return self._replies.pop(channel)

    def call(self, method: Any, channel: int = WORK) -> Any:
        """Send a synchronous method and return the broker's answer."""
        if channel == PROBE and not self._probe_open:
            self._probe_error = None
            self._method(PROBE, _pika().spec.Channel.Open())
            self._wait_reply(PROBE, self.rpc_timeout)
            self._probe_open = True
        self._replies.pop(channel, None)
        self._method(channel, method)
        return self._wait_reply(channel, self.rpc_timeout)

    def declare(self, queue: str, arguments: dict[str, Any], *,
                passive: bool = False) -> QueueCounts:
        """Declare a durable queue; its counts. On the probe channel: ProbeError when the
        queue is missing (passive) or exists with other arguments."""
        method = _pika().spec.Queue.Declare(queue=queue, passive=passive, durable=True,
                                            arguments=arguments)
        ok = self.call(method, PROBE)
        return QueueCounts(int(ok.message_count), int(ok.consumer_count))

    def purge(self, queue: str, channel: int = WORK) -> int:
        return int(self.call(_pika().spec.Queue.Purge(queue=queue), channel).message_count)

    def delete(self, queue: str) -> int:
        return int(self.call(_pika().spec.Queue.Delete(queue=queue), WORK).message_count)

    # -- consuming -------------------------------------------------------------------

    def qos(self, prefetch: int) -> None:
        """A per-consumer prefetch, for consumers started afterwards. (A channel-wide one
        applies at once, but RabbitMQ 4.3 refuses it with a channel error.)"""
        self.call(_pika().spec.Basic.Qos(prefetch_count=prefetch, global_qos=False))

    def poll(self, timeout: float) -> bool:
        """Read what arrives within ``timeout`` seconds; False if nothing came."""
        return self._receive(timeout)

    def consume(self, queue: str) -> None:
        self.cancelled = False
        ok = self.call(_pika().spec.Basic.Consume(queue=queue))
        self.consumer_tag = ok.consumer_tag

    def cancel(self) -> None:
        """Stop the consumer; deliveries sent before the broker heard it stay queued
        here."""
        if self.consumer_tag is not None and not self.cancelled:
            self.call(_pika().spec.Basic.Cancel(consumer_tag=self.consumer_tag))
        self.consumer_tag = None

    def next_delivery(self, timeout: float) -> Delivery | None:
        if self.deliveries:
            return self.deliveries.popleft()
        if self.cancelled:
            raise self._fail("the broker cancelled the consumer (the queue was deleted?)")
        self._wait(lambda: bool(self.deliveries) or self.cancelled, timeout)
        return self.deliveries.popleft() if self.deliveries else None

    def get(self, queue: str) -> Delivery | None:
        reply = self.call(_pika().spec.Basic.Get(queue=queue))
        return None if reply is _EMPTY else reply

    def ack(self, tag: int, multiple: bool = False) -> None:
        self._sendall(ack_frame(WORK, tag, multiple))

    def requeue(self, tag: int, multiple: bool = False) -> None:
        """basic.nack with requeue: the broker marks the messages redelivered."""
        self._sendall(requeue_frame(WORK, tag, multiple))

    # -- publishing with confirms ------------------------------------------------------

    def publish_bytes(self, routing_key: str, body: bytes, properties: bytes,
                      mandatory: bool = True) -> bytes:
        """The frames of one message; pass them (several joined) to ``publish``."""
        head = self._publish_heads.get((routing_key, mandatory))
        if head is None:
            head = publish_frame(WORK, routing_key, mandatory)
            self._publish_heads[(routing_key, mandatory)] = head
        if len(properties) > self.header_room:
            # The broker would close the connection on it: the caller fits its properties
            # first (fit_properties), so this only guards against a mistake.
            raise WireError(f"the properties of a message take {len(properties)} bytes; "
                            f"frame_max {self.frame_max} leaves room for {self.header_room}")
        return message_frames(head, WORK, body, properties, self.frame_max)

    def publish(self, frames: bytes, count: int) -> int:
        """Send ``count`` messages' frames; returns the sequence number of the last."""
        self._sendall(frames)
        self._published += count
        return self._published

    def settle(self, upto: int, timeout: float) -> tuple[list[Delivery], list[int]]:
        """Wait until the broker confirmed every message up to ``upto``; returns (and
        forgets) the messages it returned as unroutable and the sequence numbers of those
        it refused (basic.nack), which it did not take and which may be sent again.
        Raises WireError when it said nothing in time; the connection is then dropped,
        since what it did with the rest cannot be known."""
        if not self._wait(lambda: self._settled >= upto, timeout):
            why = f" (the broker blocks publishing: {self.blocked})" if self.blocked else ""
            raise self._fail(f"no publisher confirm within {timeout:g}s{why}")
        returned, self.returned = self.returned, []
        refused, self._refused = self._refused, []
        return returned, refused

    def confirm(self, upto: int, timeout: float) -> list[Delivery]:
        """``settle``, for a caller that cannot send again what the broker refused: any
        refusal is a WireError, and the connection is dropped."""
        returned, refused = self.settle(upto, timeout)
        if refused:
            raise self.refusal(len(refused))
        return returned

    def refusal(self, count: int) -> WireError:
        """The error for ``count`` messages the broker kept refusing; drops the
        connection."""
        return self._fail(f"the broker refused {count} message(s) (basic.nack)")
