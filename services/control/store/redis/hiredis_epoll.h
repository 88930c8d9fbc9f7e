#pragma once
// hiredis' async event hooks (ev.addRead/delRead/addWrite/delWrite/cleanup) on a plain epoll set, so that
// latchkey-control needs no libevent/libuv: the owner's loop thread calls epoll_wait and, for the context's fd,
// DispatchHiredisEvents. Everything here runs on that one loop thread.
#include <hiredis/async.h>

#include <cstdint>
#include <functional>

namespace latchkey::control::redis {

// Installs the hooks on `ac` (uses ac->ev.data). The context's fd is registered in `epoll_fd` with
// epoll_data.u64 = `token` whenever hiredis wants to read or write. `on_cleanup` runs when hiredis frees the
// context (a disconnection, a failed connect or redisAsyncFree): the pointer is dead once it returns.
void AttachHiredisToEpoll(redisAsyncContext* ac, int epoll_fd, uint64_t token, std::function<void()> on_cleanup);

// Hands an epoll event mask to hiredis. `ac` may be freed by this (see on_cleanup); `still_alive` is asked
// between the read and the write half.
void DispatchHiredisEvents(redisAsyncContext* ac, uint32_t events, const std::function<bool()>& still_alive);

}  // namespace latchkey::control::redis
