package dlq

// ACLRules are the least privileges a Queue with the default prefix
// needs, as rules for `ACL SETUSER <user>` or a `user` line of redis.conf
// (after "on >password"): the connection commands go-redis sends (HELLO,
// AUTH, CLIENT SETNAME/SETINFO, SELECT, PING) without the administrative
// ones, and exactly the stream, hash, set and script commands this package
// calls, on the keys under "dlq:". Scripts run with the caller's rights,
// so the commands inside them are listed too. TestACL runs every
// operation as a user with only these rules; docs/dlq.md and
// deploy/compose/compose.yaml carry the same line.
const ACLRules = "resetkeys ~dlq:* resetchannels -@all +@connection -@admin -@dangerous " +
	"+xadd +xrange +xrevrange +xlen +xdel +xack +xtrim +xautoclaim +xreadgroup +xgroup|create +xinfo|groups +xpending " +
	"+hget +hset +hdel +sadd +srem +smembers +del +eval +evalsha"
