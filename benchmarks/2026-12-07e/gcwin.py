import re,datetime,sys
lines=open(sys.argv[1]).read().splitlines()
t0=float(lines[0].split()[4])
show=False
for l in lines:
    m=re.match(r'gc (\d+) @([\d.]+)s',l)
    if m:
        ts=datetime.datetime.utcfromtimestamp(t0+float(m.group(2))).strftime('%H:%M:%S.%f')[:-3]
        if show: print(ts, l[:140])
    elif 'INFO' in l or 'ready in' in l:
        if 'snapshot stored seq=20000' in l: show=True
        if show: print(l[:170])
        if 'ready in' in l and show and 'snapshot at 20000' in l: show=False
