# paired.awk A B files...: per alternation (the i-th run of A with the i-th of B in the same file), B's beyond / A's beyond; median of those, and pooled medians.
function median(arr, n,   i, j, t, a) { for (i=1;i<=n;i++) a[i]=arr[i]; for (i=1;i<=n;i++) for (j=i+1;j<=n;j++) if (a[j]<a[i]) {t=a[i];a[i]=a[j];a[j]=t}; return (n%2)? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2 }
BEGIN { A=ARGV[1]; B=ARGV[2]; ARGV[1]=""; ARGV[2]="" }
FNR==1 { f++ }
{ bc=$4; sub(/us\/op/,"",bc); be=$8-bc }
$1==A { na[f]++; va[f,na[f]]=be; ra[f,na[f]]=$7 }
$1==B { nb[f]++; vb[f,nb[f]]=be; rb[f,nb[f]]=$7 }
END { n=0; for (g=1; g<=f; g++) for (i=1; i<=na[g] && i<=nb[g]; i++) { n++; r[n]=vb[g,i]/va[g,i]; pa[n]=va[g,i]; pb[n]=vb[g,i]; qa[n]=ra[g,i]; qb[n]=rb[g,i] }
  printf "%d pairs: median of %s/%s beyond %.3f (%+.1f%%); pooled medians beyond %.1f and %.1f (%+.1f%%); x bare %.3f and %.3f\n", n, B, A, median(r,n), (median(r,n)-1)*100, median(pa,n), median(pb,n), (median(pb,n)/median(pa,n)-1)*100, median(qa,n), median(qb,n) }
