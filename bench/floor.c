/*
 * The syscall floor: the calls sockstate makes, in a tight C loop on idle,
 * connected loopback sockets, with nothing around them. bench/run.js builds
 * this with the machine's cc and drives it over stdin/stdout so its rounds
 * interleave with the JavaScript contenders.
 *
 * Commands (one per line on stdin, one JSON line back on stdout):
 *   single <iterations>      ns per call of each primitive on one socket
 *   many <count> <passes>    ns per socket of TCP_INFO (probe length) + poll
 *                            over the first <count> sockets
 * Each command measures twice: as a single-threaded process (the floor
 * proper), then again with one extra idle thread ("...Mt" keys). Linux
 * takes a cheaper fd lookup (no reference count) when no other thread
 * shares the fd table; every Node process has threads, so the second
 * figure is the floor any Node addon can reach.
 *   quit
 * Argument: the port of a loopback server that holds the peers of the
 * "many" sockets, and how many of them to connect.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* sockstate reads this many bytes of tcp_info for a state probe (up to
 * data_segs_out) and the whole 6.18 struct for tcpInfo(). */
#define PROBE_INFO_LENGTH 160
#define FULL_INFO_LENGTH 280

static unsigned char info_buf[512];
static volatile long sink;

static void die(const char *what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int connect_to(int port) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) die("connect");
  return fd;
}

/* One connected pair of our own: the measured socket stays idle. */
static int make_pair(int *peer_out) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) die("socket");
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0) die("bind");
  if (listen(lfd, 1) != 0) die("listen");
  socklen_t alen = sizeof(addr);
  if (getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) die("getsockname");
  int fd = connect_to(ntohs(addr.sin_port));
  int peer = accept(lfd, NULL, NULL);
  if (peer < 0) die("accept");
  close(lfd);
  *peer_out = peer;
  return fd;
}

static inline int tcp_info(int fd, socklen_t want) {
  socklen_t len = want;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info_buf, &len) != 0) die("TCP_INFO");
  return info_buf[0] + (int)len;
}

static inline int poll_one(int fd) {
  struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
  if (poll(&p, 1, 0) < 0) die("poll");
  return p.revents;
}

static inline int so_error(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len) != 0) die("SO_ERROR");
  return v;
}

static inline int siocinq(int fd) {
  int n = 0;
  if (ioctl(fd, SIOCINQ, &n) != 0) die("SIOCINQ");
  return n;
}

#define TIME_LOOP(result, iters, body)          \
  do {                                          \
    long acc_ = 0;                              \
    double t0_ = now_ns();                      \
    for (long i_ = 0; i_ < (iters); ++i_) {     \
      acc_ += (body);                           \
    }                                           \
    (result) = (now_ns() - t0_) / (double)(iters); \
    sink += acc_;                               \
  } while (0)

/* An idle thread that shares the fd table, as Node's threads do. */
static pthread_t idle;
static int idle_pipe[2];

static void *idle_main(void *arg) {
  (void)arg;
  char c;
  while (read(idle_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  return NULL;
}

static void threads_on(void) {
  if (pipe(idle_pipe) != 0) die("pipe");
  if (pthread_create(&idle, NULL, idle_main, NULL) != 0) die("pthread_create");
}

static void threads_off(void) {
  if (write(idle_pipe[1], "x", 1) != 1) die("write");
  pthread_join(idle, NULL);
  close(idle_pipe[0]);
  close(idle_pipe[1]);
  /* The exiting thread drops its fd-table reference after join returns. */
  usleep(2000);
}

struct single {
  double full, probe, probe_poll, pl, soerr, inq;
};

static void measure_single(int fd, long iters, struct single *r) {
  TIME_LOOP(r->full, iters, tcp_info(fd, FULL_INFO_LENGTH));
  TIME_LOOP(r->probe, iters, tcp_info(fd, PROBE_INFO_LENGTH));
  TIME_LOOP(r->probe_poll, iters, tcp_info(fd, PROBE_INFO_LENGTH) + poll_one(fd));
  TIME_LOOP(r->pl, iters, poll_one(fd));
  TIME_LOOP(r->soerr, iters, so_error(fd));
  TIME_LOOP(r->inq, iters, siocinq(fd));
}

static void run_single(int fd, long iters) {
  struct single st, mt;
  measure_single(fd, iters, &st);
  threads_on();
  measure_single(fd, iters, &mt);
  threads_off();
  printf("{\"tcpInfoFull\":%.2f,\"tcpInfoProbe\":%.2f,\"tcpInfoPoll\":%.2f,"
         "\"poll\":%.2f,\"soError\":%.2f,\"siocinq\":%.2f,"
         "\"tcpInfoFullMt\":%.2f,\"tcpInfoProbeMt\":%.2f,\"tcpInfoPollMt\":%.2f,"
         "\"pollMt\":%.2f,\"soErrorMt\":%.2f,\"siocinqMt\":%.2f}\n",
         st.full, st.probe, st.probe_poll, st.pl, st.soerr, st.inq,
         mt.full, mt.probe, mt.probe_poll, mt.pl, mt.soerr, mt.inq);
  fflush(stdout);
}

static double measure_many(const int *fds, long count, long passes) {
  long acc = 0;
  double t0 = now_ns();
  for (long p = 0; p < passes; ++p) {
    for (long i = 0; i < count; ++i) {
      acc += tcp_info(fds[i], PROBE_INFO_LENGTH) + poll_one(fds[i]);
    }
  }
  sink += acc;
  return (now_ns() - t0) / (double)(passes * count);
}

static void run_many(const int *fds, long count, long passes) {
  double st = measure_many(fds, count, passes);
  threads_on();
  double mt = measure_many(fds, count, passes);
  threads_off();
  printf("{\"perSocket\":%.2f,\"perSocketMt\":%.2f}\n", st, mt);
  fflush(stdout);
}

int main(int argc, char **argv) {
  int many_port = argc > 1 ? atoi(argv[1]) : 0;
  long many_count = argc > 2 ? atol(argv[2]) : 0;

  int peer;
  int fd = make_pair(&peer);

  int *fds = NULL;
  if (many_port > 0 && many_count > 0) {
    fds = calloc((size_t)many_count, sizeof(int));
    if (fds == NULL) die("calloc");
    for (long i = 0; i < many_count; ++i) fds[i] = connect_to(many_port);
  }
  /* Let the handshakes' ACKs settle so every socket is idle. */
  usleep(100000);
  printf("{\"ready\":true,\"many\":%ld}\n", fds != NULL ? many_count : 0L);
  fflush(stdout);

  char line[128];
  while (fgets(line, sizeof(line), stdin) != NULL) {
    char cmd[16];
    long a = 0, b = 0;
    int n = sscanf(line, "%15s %ld %ld", cmd, &a, &b);
    if (n >= 1 && strcmp(cmd, "quit") == 0) break;
    if (n == 2 && strcmp(cmd, "single") == 0 && a > 0) {
      run_single(fd, a);
    } else if (n == 3 && strcmp(cmd, "many") == 0 && a > 0 && b > 0 &&
               fds != NULL && a <= many_count) {
      run_many(fds, a, b);
    } else {
      printf("{\"error\":\"bad command\"}\n");
      fflush(stdout);
    }
  }
  return 0;
}
