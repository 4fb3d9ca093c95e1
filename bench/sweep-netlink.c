/*
 * Why the metrics sweep probes each tracked fd on the libuv thread pool
 * rather than dumping NETLINK_SOCK_DIAG as `ss` does: this program connects
 * <n> loopback pairs to itself and measures, side by side, per tracked
 * socket, (1) TCP_INFO (280 bytes) + SO_COOKIE on each fd, what
 * native/sweep.cc does, and (2) one inet_diag dump of every TCP socket in
 * the network namespace with INET_DIAG_INFO. The dump costs per socket in
 * the namespace, every process's included (here the <n> peers and whatever
 * else runs), not per tracked socket, cannot tell a pending error (no poll
 * bits), and reads other processes' sockets.
 *
 *   cc -O2 -o /tmp/sweep-netlink bench/sweep-netlink.c && /tmp/sweep-netlink 8000
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static double cpu(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec*1e9+t.tv_nsec;}
int main(int argc,char**argv){
  if(argc<2){fprintf(stderr,"usage: %s <pairs>\n",argv[0]);return 2;}
  int n=atoi(argv[1]);
  int l=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={0};a.sin_family=AF_INET;a.sin_addr.s_addr=htonl(INADDR_LOOPBACK);
  socklen_t al=sizeof a;
  if(l<0||bind(l,(void*)&a,sizeof a)||listen(l,4096)||getsockname(l,(void*)&a,&al)){perror("listen");return 1;}
  int*c=malloc(n*sizeof(int));
  for(int i=0;i<n;i++){c[i]=socket(AF_INET,SOCK_STREAM,0);if(connect(c[i],(void*)&a,sizeof a)){perror("connect");return 1;}int s=accept(l,0,0);if(s<0){perror("accept");return 1;}}
  unsigned char buf[512];
  for(int rep=0;rep<3;rep++){
  double t0=now(),c0=cpu();long acc=0;
  for(int i=0;i<n;i++){socklen_t len=280;getsockopt(c[i],IPPROTO_TCP,TCP_INFO,buf,&len);uint64_t ck;socklen_t cl=8;getsockopt(c[i],SOL_SOCKET,SO_COOKIE,&ck,&cl);acc+=ck+len;}
  double t1=now(),c1=cpu();
  // netlink dump of all TCP sockets with INET_DIAG_INFO
  int nl=socket(AF_NETLINK,SOCK_DGRAM,NETLINK_SOCK_DIAG);
  if(nl<0){perror("netlink");return 1;}
  struct {struct nlmsghdr h;struct inet_diag_req_v2 r;} req={0};
  req.h.nlmsg_len=sizeof req;req.h.nlmsg_type=SOCK_DIAG_BY_FAMILY;req.h.nlmsg_flags=NLM_F_REQUEST|NLM_F_DUMP;
  req.r.sdiag_family=AF_INET;req.r.sdiag_protocol=IPPROTO_TCP;req.r.idiag_states=~0u;req.r.idiag_ext=1<<(INET_DIAG_INFO-1);
  if(send(nl,&req,sizeof req,0)<0){perror("send");return 1;}
  static char rb[1<<16];long msgs=0;int done=0;
  while(!done){int r=recv(nl,rb,sizeof rb,0);if(r<=0)break;for(struct nlmsghdr*h=(void*)rb;NLMSG_OK(h,r);h=NLMSG_NEXT(h,r)){if(h->nlmsg_type==NLMSG_DONE){done=1;break;}msgs++;}}
  close(nl);
  double t2=now(),c2=cpu();
  printf("n=%d per-fd TCP_INFO+SO_COOKIE: %.0f ns/tracked (cpu %.0f); netlink dump: %ld sockets in netns, %.0f ns/tracked (cpu %.0f), %.0f ns/dumped socket\n",n,(t1-t0)/n,(c1-c0)/n,msgs,(t2-t1)/n,(c2-c1)/n,(t2-t1)/msgs);
  if(acc==42)puts("");
  }
  return 0;
}
