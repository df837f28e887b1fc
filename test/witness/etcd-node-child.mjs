// A witness cluster node reduced to its membership, in its own process so a test can SIGKILL or SIGSTOP it.
// argv: <etcd url> <node name> <address> <lease ttl>. Prints 'joined' once in the cluster.
import { EtcdMembership } from '../../dist/witness/membership/etcd.js'

const [url, name, address, ttl] = process.argv.slice(2)
const m = await EtcdMembership.join({ endpoints: [url], self: { name, addresses: [address] }, leaseTtlSeconds: Number(ttl) })
process.stdout.write('joined\n')
process.on('SIGTERM', () => m.close().then(() => process.exit(0)))
