#include "services/control/store/redis/hiredis_epoll.h"

#include <sys/epoll.h>

#include <utility>

namespace latchkey::control::redis {
namespace {

struct Attachment {
  int epoll_fd = -1;
  int fd = -1;
  uint64_t token = 0;
  uint32_t mask = 0;
  bool registered = false;
  std::function<void()> on_cleanup;
};

void Update(Attachment* a) {
  epoll_event event{};
  event.events = a->mask;
  event.data.u64 = a->token;
  if (a->mask == 0) {
    // An fd with no interest left would still report EPOLLHUP/EPOLLERR over and over: take it out.
    if (a->registered) ::epoll_ctl(a->epoll_fd, EPOLL_CTL_DEL, a->fd, nullptr);
    a->registered = false;
  } else if (a->registered) {
    ::epoll_ctl(a->epoll_fd, EPOLL_CTL_MOD, a->fd, &event);
  } else {
    ::epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, a->fd, &event);
    a->registered = true;
  }
}

void Change(void* privdata, uint32_t add, uint32_t remove) {
  auto* a = static_cast<Attachment*>(privdata);
  uint32_t mask = (a->mask | add) & ~remove;
  if (mask == a->mask) return;
  a->mask = mask;
  Update(a);
}

void AddRead(void* privdata) { Change(privdata, EPOLLIN, 0); }
void DelRead(void* privdata) { Change(privdata, 0, EPOLLIN); }
void AddWrite(void* privdata) { Change(privdata, EPOLLOUT, 0); }
void DelWrite(void* privdata) { Change(privdata, 0, EPOLLOUT); }

void Cleanup(void* privdata) {
  auto* a = static_cast<Attachment*>(privdata);
  a->mask = 0;
  Update(a);  // the fd is still open here; redisFree closes it afterwards
  std::function<void()> on_cleanup = std::move(a->on_cleanup);
  delete a;
  if (on_cleanup) on_cleanup();
}

}  // namespace

void AttachHiredisToEpoll(redisAsyncContext* ac, int epoll_fd, uint64_t token, std::function<void()> on_cleanup) {
  auto* a = new Attachment();
  a->epoll_fd = epoll_fd;
  a->fd = ac->c.fd;
  a->token = token;
  a->on_cleanup = std::move(on_cleanup);
  ac->ev.data = a;
  ac->ev.addRead = AddRead;
  ac->ev.delRead = DelRead;
  ac->ev.addWrite = AddWrite;
  ac->ev.delWrite = DelWrite;
  ac->ev.cleanup = Cleanup;
  // A non-blocking connect completes with the fd writable.
  AddWrite(a);
}

void DispatchHiredisEvents(redisAsyncContext* ac, uint32_t events, const std::function<bool()>& still_alive) {
  // EPOLLERR/EPOLLHUP go to the read half: hiredis then sees the failed connect or the EOF and disconnects.
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) redisAsyncHandleRead(ac);
  if ((events & EPOLLOUT) && still_alive()) redisAsyncHandleWrite(ac);
}

}  // namespace latchkey::control::redis
