#!/usr/bin/env python3
"""A phone's media socket for the NAT end-to-end tests (standard library only).

  rtp_peer.py --bind=IP:PORT --to=IP:PORT --ssrc=N --seq=N [--duration=3] [--rate=50] [--linger=0.5]
              [--start-at=EPOCH] [--rebind=IP:PORT --rebind-after=SECONDS]

Sends G.711-sized RTP (12-byte header + 160 bytes payload) from IP:PORT to --to, --rate packets per
second on an absolute schedule, one SSRC, sequence numbers from --seq on (timestamps 160 apart), for
--duration seconds; meanwhile, and for --linger seconds after, counts what arrives on the socket.
--start-at waits until that wall-clock time first, so that several peers start together.
--rebind: after --rebind-after seconds the socket is closed and the stream goes on from a new one
bound to IP:PORT, same SSRC, next sequence number, no pause (a phone whose NAT mapping changed).

Prints one line of JSON: ssrc, sent, first_seq, next_seq (the sequence a continuing stream uses
next), first_send (epoch seconds of the first packet), late (seconds it started after --start-at),
received (all datagrams), received_rtp (RTP datagrams), received_from ({"IP:PORT": count}), ssrcs
(SSRCs received), received_seqs (sequence numbers received, in order); with --rebind also
rebind_send (epoch seconds of the first packet from the new socket), sent_before_rebind and
received_before_rebind.
Exit 2 when the socket cannot be bound.
"""
import argparse
import json
import select
import socket
import struct
import sys
import time


def split_hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def rtp_packet(ssrc, seq):
    header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (160 * seq) & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
    return header + b"\xff" * 160


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--ssrc", type=lambda v: int(v, 0), required=True)
    parser.add_argument("--seq", type=int, default=0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--linger", type=float, default=0.5)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--rebind", default="")
    parser.add_argument("--rebind-after", type=float, default=0.0)
    args = parser.parse_args()

    def open_socket(address):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(split_hostport(address))
        except OSError as e:
            print("rtp_peer: cannot bind %s: %s" % (address, e), file=sys.stderr)
            sys.exit(2)
        s.setblocking(False)
        return s

    sock = open_socket(args.bind)
    target = split_hostport(args.to)

    delay = args.start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    late = max(0.0, -delay) if args.start_at else 0.0

    count = int(round(args.duration * args.rate))
    interval = 1.0 / args.rate
    start = time.monotonic()
    first_send = None
    sent = 0
    received = 0
    received_rtp = 0
    received_from = {}
    ssrcs = set()
    seqs = []
    rebind_at = int(round(args.rebind_after * args.rate)) if args.rebind else -1
    rebind = {}

    def drain():
        nonlocal received, received_rtp
        while True:
            try:
                data, source = sock.recvfrom(4096)
            except BlockingIOError:
                return
            except OSError:
                # An ICMP error for an earlier send (e.g. port unreachable): not a datagram.
                continue
            received += 1
            key = "%s:%d" % source
            received_from[key] = received_from.get(key, 0) + 1
            if len(data) >= 12 and data[0] >> 6 == 2:
                received_rtp += 1
                ssrcs.add(struct.unpack("!I", data[8:12])[0])
                seqs.append(struct.unpack("!H", data[2:4])[0])

    end = start + count * interval + args.linger
    while True:
        now = time.monotonic()
        if sent < count and now >= start + sent * interval:
            if sent == rebind_at:
                drain()
                sock.close()
                sock = open_socket(args.rebind)
                rebind = {"sent_before_rebind": sent, "received_before_rebind": received}
            try:
                sock.sendto(rtp_packet(args.ssrc, args.seq + sent), target)
            except OSError:
                pass  # counted as sent: the network lost it
            if first_send is None:
                first_send = time.time()
            if sent == rebind_at:
                rebind["rebind_send"] = time.time()
            sent += 1
            continue
        if now >= end:
            break
        wake = start + sent * interval if sent < count else end
        select.select([sock], [], [], max(0.0, min(wake, end) - now))
        drain()
    drain()

    print(json.dumps({
        "bind": args.bind,
        "ssrc": args.ssrc,
        "sent": sent,
        "first_seq": args.seq,
        "next_seq": args.seq + sent,
        "first_send": first_send,
        "late": round(late, 3),
        "received": received,
        "received_rtp": received_rtp,
        "received_from": received_from,
        "ssrcs": sorted(ssrcs),
        "received_seqs": seqs,
        **rebind,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
