/* One file, many writers (docs/BENCHMARKS.md, "CPU per GiB on the 2-core VM, and one file's
   writes"): MIB MiB into /dev/shm/mw.out in 64 KiB pieces from THREADS threads at disjoint
   offsets, by MODE: 0 pwrite, 1 a shared mapping (page faults), 2 fallocate then the mapping,
   3 the mapping with MADV_HUGEPAGE, 4 the mapping with MADV_POPULATE_WRITE a MiB ahead.
     cc -O2 -pthread -o /tmp/filewrites scripts/bench/filewrites.c && /tmp/filewrites MODE THREADS MIB */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static size_t total; static int fd, mode, nth; static char *map; static char src[1<<20];
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
static void *work(void *arg){ long i=(long)arg; size_t per=total/nth, off=i*per;
  for (size_t o=0;o<per;o+=65536){
    if(mode==0) pwrite(fd,src+(o&((1<<20)-1)),65536,off+o);
    else { if(mode==4 && ((o&((1<<20)-1))==0)) madvise(map+off+o,1<<20,23 /*MADV_POPULATE_WRITE*/); memcpy(map+off+o,src+(o&((1<<20)-1)),65536); }
  } return 0;}
int main(int c,char**v){ mode=atoi(v[1]); nth=atoi(v[2]); total=(size_t)atol(v[3])<<20; memset(src,7,sizeof src);
  unlink("/dev/shm/mw.out"); fd=open("/dev/shm/mw.out",O_RDWR|O_CREAT,0644);
  double t0=now();
  if(mode>=1){ if(mode==2) fallocate(fd,0,0,total); else ftruncate(fd,total);
    map=mmap(0,total,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
    if(mode==3) madvise(map,total,MADV_HUGEPAGE);
  } else ftruncate(fd,0);
  double t1=now();
  pthread_t t[64]; for(long i=0;i<nth;i++) pthread_create(&t[i],0,work,(void*)i); for(int i=0;i<nth;i++) pthread_join(t[i],0);
  double t2=now();
  printf("mode %d threads %d: setup %.3f s, write %.3f s, total %.2f GB/s\n",mode,nth,t1-t0,t2-t1,total/(t2-t0)/1e9);
  unlink("/dev/shm/mw.out"); return 0; }
