#pragma once
// glibc gives each thread that allocates concurrently its own arena (up to 8 per core) and keeps
// freed memory in them. gRPC 1.51 buffers a whole request before its size check (grpc/grpc#43012),
// so oversized requests read on different threads left ~30 MiB behind in each arena: control's
// RSS climbed to ~215 MiB and stayed there. Two arenas bound that near 110 MiB; the relay's packet
// path does not allocate, and control's allocation rate is low enough not to need more.
namespace latchkey::process {

void LimitMallocArenas();

}  // namespace latchkey::process
