// A native XDP program that passes every frame. Test and benchmark topologies put it on the veth
// peer of an interface the relay forwards on with XDP_TX: the veth driver delivers XDP_TX'd frames
// only to a peer that runs XDP itself. Built with `clang -O2 -target bpf -c`, no headers.
__attribute__((section("xdp"), used)) int lk_xdp_pass(void *ctx) { return 2; /* XDP_PASS */ }
char _license[] __attribute__((section("license"), used)) = "GPL";
