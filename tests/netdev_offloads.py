#!/usr/bin/env python3
"""Sets and reads back a network device's offloads with the ethtool ioctls, for test and benchmark
topologies on machines without the ethtool program (`ethtool -K DEV tx off gro on`).

    netdev_offloads.py DEV [tx=on|off] [gro=on|off] ...   prints "DEV tx=0 gro=1" (values read back)
"""
import array
import fcntl
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
COMMANDS = {"tx": (0x16, 0x17), "gro": (0x2B, 0x2C)}  # (get, set): ETHTOOL_[GS]TXCSUM, ETHTOOL_[GS]GRO


def ethtool(dev, cmd, data=0):
    value = array.array("I", [cmd, data])  # struct ethtool_value
    request = struct.pack("16sP", dev.encode(), value.buffer_info()[0]).ljust(40, b"\0")  # struct ifreq
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, request)
    return value[1]


def main():
    dev, out = sys.argv[1], []
    for setting in sys.argv[2:]:
        name, _, state = setting.partition("=")
        get, set_ = COMMANDS[name]
        ethtool(dev, set_, int(state == "on"))
        out.append("%s=%d" % (name, ethtool(dev, get)))
    print(dev, " ".join(out))


if __name__ == "__main__":
    main()
