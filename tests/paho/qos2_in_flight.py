"""paho-mqtt (Python) clients with many QoS 2 messages in flight, against a broker on 127.0.0.1.

    qos2_in_flight.py publish PORT 4|5   200 QoS 2 messages, 100 in flight, nobody subscribed
    qos2_in_flight.py mixed PORT 4|5     100 QoS 1 then 100 QoS 2 to one subscriber of both

Prints `key=value` lines: completed (publishes whose flow finished), disconnects, and for
`mixed` the deliveries per topic and the most times one message arrived. Every wait is bounded.
"""
import collections
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def client(cid, port, v5, inflight):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    c.max_inflight_messages_set(inflight)
    c.disconnects = []
    c.on_disconnect = lambda cl, u, f, rc, p: cl.disconnects.append(str(rc))
    connected = []
    c.on_connect = lambda cl, u, f, rc, p: connected.append(rc)
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", port, 30, clean_start=True, properties=props)
    else:
        c.connect("127.0.0.1", port, 30)
    c.loop_start()
    deadline = time.time() + 5
    while not connected and time.time() < deadline:
        time.sleep(0.01)
    if not connected:
        sys.exit(f"{cid}: no CONNACK within 5 s")
    return c


def completed(infos):
    n = 0
    for i in infos:
        try:
            n += i.is_published()
        except RuntimeError:
            pass
    return n


def wait_all(infos, seconds):
    deadline = time.time() + seconds
    while completed(infos) < len(infos) and time.time() < deadline:
        time.sleep(0.05)


def main():
    mode, port, v5 = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "5"
    if mode == "publish":
        p = client(f"q2pub-{v5}", port, v5, 100)
        infos = [p.publish("nobody/q2", b"x", qos=2) for _ in range(200)]
        wait_all(infos, 10)
        print(f"completed={completed(infos)}")
        print(f"disconnects={len(p.disconnects)}")
        p.disconnect()
        p.loop_stop()
    elif mode == "mixed":
        seen = []
        s = client(f"q2sub-{v5}", port, v5, 20)
        s.on_message = lambda c, u, m: seen.append((m.topic, bytes(m.payload)))
        subscribed = []
        s.on_subscribe = lambda c, u, mid, codes, p: subscribed.append(mid)
        s.subscribe([("dq/q1", 1), ("dq/q2", 2)])
        deadline = time.time() + 5
        while not subscribed and time.time() < deadline:
            time.sleep(0.01)
        p = client(f"q2mixed-{v5}", port, v5, 100)
        infos = [p.publish(f"dq/q{q}", f"{q}-{i}", qos=q) for q in (1, 2) for i in range(100)]
        wait_all(infos, 10)
        deadline = time.time() + 5
        while len(seen) < 200 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        counts = collections.Counter(seen)
        print(f"completed={completed(infos)}")
        print(f"disconnects={len(p.disconnects) + len(s.disconnects)}")
        print(f"q1_distinct={sum(1 for (t, _) in counts if t == 'dq/q1')}")
        print(f"q2_distinct={sum(1 for (t, _) in counts if t == 'dq/q2')}")
        print(f"q2_deliveries={sum(n for (t, _), n in counts.items() if t == 'dq/q2')}")
        print(f"max_repeats={max(counts.values()) if counts else 0}")
        for c in (p, s):
            c.disconnect()
            c.loop_stop()
    else:
        sys.exit(f"unknown mode {mode}")


main()
