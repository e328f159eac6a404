// One core streaming reads over 256 MiB: anonymous memory in 4 KiB pages (mode 0), the same with
// MADV_HUGEPAGE (mode 1, transparent 2 MiB pages), or a file mapped shared (mode 2, the page
// cache: how the CPU backend read weights before WEIGHTFS_CPU_WEIGHTS=resident). Best and mean of 20
// passes. docs/BENCHMARKS.md, "Weights in huge pages".
//   cc -O2 -mavx512f -o /tmp/pagebw scripts/bench/pagebw.c && /tmp/pagebw 0; /tmp/pagebw 1; /tmp/pagebw 2 FILE
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  size_t bytes=256u<<20; int mode=atoi(argv[1]); char*buf;
  if(mode==2){int fd=open(argv[2],O_RDONLY); buf=mmap(0,bytes,PROT_READ,MAP_SHARED,fd,0);}
  else { buf=mmap(0,bytes+(2<<20),PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); buf=(char*)(((size_t)buf+(2<<20)-1)&~((size_t)(2<<20)-1));
    madvise(buf,bytes,mode==1?MADV_HUGEPAGE:MADV_NOHUGEPAGE); memset(buf,1,bytes);}
  double best=1e9,tot=0; float sink=0;
  for(int rep=0;rep<20;rep++){
    double t0=now();
    __m512 a=_mm512_setzero_ps(),b=a,c=a,d=a;
      for(size_t i=0;i<bytes;i+=256){a=_mm512_add_ps(a,_mm512_loadu_ps((float*)(buf+i)));b=_mm512_add_ps(b,_mm512_loadu_ps((float*)(buf+i+64)));c=_mm512_add_ps(c,_mm512_loadu_ps((float*)(buf+i+128)));d=_mm512_add_ps(d,_mm512_loadu_ps((float*)(buf+i+192)));}
      sink+=_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a,b),_mm512_add_ps(c,d)));
    double t=now()-t0; if(t<best)best=t; tot+=t;
  }
  printf("mode %d: best %.1f GB/s mean %.1f (%g)\n",mode,bytes/best/1e9,20*bytes/tot/1e9,sink);
}
