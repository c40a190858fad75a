-- node_heartbeat: a queued node says it is alive, atomically.
--
-- KEYS[1]  {NS}:node:<node>:heartbeat   STRING, set with a TTL
-- KEYS[2]  {NS}:nodes                   SET of node ids
-- ARGV[1]  node id
-- ARGV[2]  TTL in milliseconds (1 .. 3600000)
-- ARGV[3]  value to store (the node's wall clock in ms, for the janitor)
--
-- Returns 1 if the node was not in the set of nodes yet (it just joined or
-- was reaped), else 0. A bad TTL is an error and changes nothing.
local ttl = tonumber(ARGV[2])
if not ttl or ttl < 1 or ttl > 3600000 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR node_heartbeat: TTL must be an integer 1..3600000 ms')
end
if not ARGV[1] or ARGV[1] == '' then
  return redis.error_reply('ERR node_heartbeat: node id missing')
end
redis.call('SET', KEYS[1], ARGV[3] or '', 'PX', ttl)
return redis.call('SADD', KEYS[2], ARGV[1])
