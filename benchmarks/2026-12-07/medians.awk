# medians.awk: medians of ab-full.sh summary lines by binary: awk -f medians.awk OUT.summary
# input: summary lines "name bare OPS CPUus/op spread OPS X CPU XCPU"
function median(arr, n,   i, j, t, a) { for (i=1;i<=n;i++) a[i]=arr[i]; for (i=1;i<=n;i++) for (j=i+1;j<=n;j++) if (a[j]<a[i]) {t=a[i];a[i]=a[j];a[j]=t}; return (n%2)? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2 }
{ name=$1; bc=$4; sub(/us\/op/,"",bc); n[name]++; k=n[name]; beyond[name,k]=$8-bc; whole[name,k]=$8; ratio[name,k]=$7; sops[name,k]=$6; bops[name,k]=$3; bcpu[name,k]=bc }
END { for (nm in n) { m=n[nm]; for (k=1;k<=m;k++){ b[k]=beyond[nm,k]; w[k]=whole[nm,k]; r[k]=ratio[nm,k]; s[k]=sops[nm,k]; o[k]=bops[nm,k]; c[k]=bcpu[nm,k]}
  printf "%-8s n=%d bare %7.0f ops %5.1fus | spread %6.0f ops x%.3f | cpu %6.1f beyond %5.1f\n", nm, m, median(o,m), median(c,m), median(s,m), median(r,m), median(w,m), median(b,m) } }
