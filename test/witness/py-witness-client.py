# Drives samba.dcerpc.witness (python3-samba) against the HvCbt witness for the interop test.
# argv: binding user password ip other_ip ; prints one JSON line per step; waits for "go" on stdin before AsyncNotify.
import json, sys
from samba.dcerpc import witness
from samba import credentials, param, NTSTATUSError, WERRORError

binding, user, password, ip, other = sys.argv[1:6]
lp = param.LoadParm()
creds = credentials.Credentials()
creds.guess(lp)
if user == '':
    creds.set_anonymous()
else:
    creds.set_username(user); creds.set_password(password); creds.set_domain('WORKGROUP')

def out(**kw):
    print(json.dumps(kw), flush=True)

try:
    c = witness.witness(binding, lp, creds)
    l = c.GetInterfaceList()
    out(step='list', interfaces=[dict(name=i.group_name, ipv4=i.ipv4, ipv6=i.ipv6, flags=i.flags, state=i.state, version=i.version) for i in l.interfaces])
    h1 = c.Register(witness.WITNESS_V1, 'SOFS', ip, 'PYHOST1')
    out(step='register', handle=str(h1))
    h2 = c.RegisterEx(witness.WITNESS_V2, 'SOFS', 'vms', other, 'PYHOST2', 0, 30)
    out(step='registerex', handle=str(h2))
    try:
        c.Register(witness.WITNESS_V2, 'SOFS', ip, 'X')
        out(step='badversion', error=0)
    except WERRORError as e:
        out(step='badversion', error=e.args[0])
    out(step='waiting')
    sys.stdin.readline()
    r = c.AsyncNotify(h1)
    msgs = []
    for m in r.messages:
        msgs.append(dict(name=getattr(m, 'name', None), change=getattr(m, 'type', None)))
    out(step='notify', type=r.type, num=r.num, messages=msgs)
    out(step='waiting')
    sys.stdin.readline()
    r = c.AsyncNotify(h2)
    addrs = []
    for m in r.messages:
        for a in m.addr:
            addrs.append(dict(ipv4=a.ipv4, flags=a.flags))
    out(step='notify', type=r.type, num=r.num, addrs=addrs)
    c.UnRegister(h2)
    out(step='unregister', ok=True)
    try:
        c.UnRegister(h2)
        out(step='unregister-again', error=0)
    except WERRORError as e:
        out(step='unregister-again', error=e.args[0])
except NTSTATUSError as e:
    out(step='error', ntstatus=e.args[0] & 0xffffffff, message=e.args[1])
except WERRORError as e:
    out(step='error', werror=e.args[0], message=e.args[1])
