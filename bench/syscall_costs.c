/* bench/syscall_costs.c: what the receive path's system calls cost on this machine, each on a
 * non-blocking UDP socket with nothing queued, 2,000,000 times: the epoll_ctl(EPOLL_CTL_MOD)
 * with which Asio re-arms every async_wait, a recv and a recvmmsg of 8 that find the queue
 * empty. docs/performance.md (section 0000) uses them to split the round trip's cost.
 *
 *   cc -O2 -o /tmp/syscall_costs bench/syscall_costs.c && /tmp/syscall_costs
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
  enum { n = 2000000 };
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof a) != 0) {
    perror("socket");
    return 1;
  }
  int ep = epoll_create1(0);
  /* The events Asio registers a socket with (epoll_reactor::register_descriptor). */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLPRI | EPOLLET};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0) {
    perror("epoll");
    return 1;
  }
  char buf[16];
  struct iovec iov[8];
  struct mmsghdr m[8];
  for (int i = 0; i < 8; ++i) {
    iov[i] = (struct iovec){buf, sizeof buf};
    m[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
  }
  double t0 = seconds();
  for (int i = 0; i < n; ++i) epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
  double t1 = seconds();
  for (int i = 0; i < n; ++i) recv(s, buf, sizeof buf, MSG_DONTWAIT);
  double t2 = seconds();
  for (int i = 0; i < n; ++i) recvmmsg(s, m, 8, MSG_DONTWAIT, NULL);
  double t3 = seconds();
  printf("epoll_ctl MOD %.0f ns, recv (empty) %.0f ns, recvmmsg of 8 (empty) %.0f ns\n",
         (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, (t3 - t2) / n * 1e9);
  close(ep);
  close(s);
  return 0;
}
