-- queue: every change to the queues' state, one atomic entry point per op.
--
-- One file with a dispatch table rather than one file per op: EVAL has no
-- include, and every op needs the same argument checks, key derivation,
-- event writer and pairing loop. Each call is still ONE script run, so each
-- op is atomic. SCHEMA.md documents every op, key and event.
--
-- KEYS[1]  {NS}:seq      the global arrival counter; its name gives the
--                        prefix "{NS}:" every other key is derived from (all
--                        keys share the hash tag, so they are in one slot)
-- KEYS[2]  {NS}:events   the events stream
-- KEYS[3]  the op's primary key (see OPS below), checked against the name
--          derived from the op's id argument
-- ARGV[1]  op name
-- ARGV[2]  now: wall clock in ms (the caller's; scripts read no clock)
-- ARGV[3]  node id of the node running the op (the `node` of its events)
-- ARGV[4]  events stream MAXLEN (approximate, 1..100000000)
-- ARGV[5..] the op's arguments
--
-- Errors (nothing is written before any of them can be raised):
--   "ERR ariq: ..."  bad arguments or keys
--   "NOTFOUND ..."   the record named does not exist
--   "EXISTS ..."     a call id already queued
--   "AGENTINUSE ..." an agent id already logged in
--   "BADSTATE ..."   the record is not in a state the op applies to
-- Replies are flat arrays of name, value pairs.

local P, NOW, NODE, MAXLEN, EVK
local PRIO_SHIFT = 8796093022208 -- 2^43: score = (1000 - prio) * 2^43 + seq
local ID_MAX, NAME_MAX, TEXT_MAX, QUEUES_MAX, PAIRS_MAX = 128, 64, 128, 16, 1000
local CMDS_MAXLEN = '10000' -- entries kept in a node's command stream (XADD MAXLEN ~)

-- ---- errors and argument checks ------------------------------------------

-- The refusal being raised: error() unwinds to the pcall at the bottom,
-- which answers with this message (an error() value itself would reach the
-- client decorated with a script trace).
local REFUSAL

local function raise(code, msg)
  REFUSAL = code .. ' ' .. msg
  error(REFUSAL)
end

local function bad(msg)
  raise('ERR', 'ariq: ' .. msg)
end

local function check_id(v, what, max)
  if type(v) ~= 'string' or #v == 0 or #v > max or not v:find('^[A-Za-z0-9._-]+$') then
    bad(what .. ' must be 1..' .. max .. ' bytes of [A-Za-z0-9._-]')
  end
  return v
end

local function check_int(v, what, lo, hi)
  local n = type(v) == 'string' and v:find('^%-?%d+$') and tonumber(v)
  if not n or #v > 16 or n < lo or n > hi then
    bad(what .. ' must be an integer ' .. lo .. '..' .. hi)
  end
  return n
end

-- Caller ID and reasons come from outside: bounded, no control bytes, no
-- '|' (the queue_log field separator).
local function check_text(v, what)
  if type(v) ~= 'string' or #v > TEXT_MAX or v:find('[%c|]') then
    bad(what .. ' must be 0..' .. TEXT_MAX .. ' bytes without control characters or |')
  end
  return v
end

local function check_enum(v, what, allowed)
  for _, a in ipairs(allowed) do
    if v == a then return v end
  end
  bad(what .. ' must be one of ' .. table.concat(allowed, '|'))
end

local function split(s)
  local out = {}
  for part in string.gmatch(s, '[^&]+') do out[#out + 1] = part end
  return out
end

-- "support&sales": 1..16 distinct queue names.
local function check_queues(v)
  if type(v) ~= 'string' or v:find('&&') or v:find('^&') or v:find('&$') then
    bad('queues must be queue names joined by &')
  end
  local qs, seen = split(v), {}
  if #qs < 1 or #qs > QUEUES_MAX then bad('queues: 1..' .. QUEUES_MAX .. ' names') end
  for _, q in ipairs(qs) do
    check_id(q, 'queue name', NAME_MAX)
    if seen[q] then bad('queues: ' .. q .. ' given twice') end
    seen[q] = true
  end
  return qs
end

local function check_nargs(n)
  if #ARGV ~= 4 + n then bad('expected ' .. (4 + n) .. ' arguments, got ' .. #ARGV) end
end

-- ---- keys -------------------------------------------------------------------

local function key(...)
  return P .. table.concat({...}, ':')
end

local function qcallers(q) return key('queue', q, 'callers') end
local function qarrivals(q) return key('queue', q, 'arrivals') end
local function qagents(q) return key('queue', q, 'agents') end
-- the keys built per record, without key()'s table: reconcile builds
-- thousands of them in one run
local function kcall(c) return P .. 'call:' .. c end
local function kagent(a) return P .. 'agent:' .. a end
local function kpairing(p) return P .. 'pairing:' .. p end

local function check_key(i, want)
  if KEYS[i] ~= want then bad('KEYS[' .. i .. '] must be ' .. want) end
end

-- ---- small helpers ---------------------------------------------------------------

local function hgetall(k)
  local flat = redis.call('HGETALL', k)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function secs(ms)
  return fmt(math.floor(ms / 1000))
end

-- Durations between times stamped by different nodes carry their clock
-- skew; one is never negative.
local function span(from_ms, to_ms)
  return math.max(0, tonumber(to_ms) - tonumber(from_ms))
end

-- One stream entry: the common fields, then the event's own.
local function emit(ev, queue, callid, agent, fields)
  local a = {'XADD', EVK, 'MAXLEN', '~', MAXLEN, '*', 'event', ev, 'ts_ms', NOW,
             'queue', queue or 'NONE', 'callid', callid or 'NONE', 'agent', agent or 'NONE',
             'node', NODE}
  for i = 1, #fields do a[#a + 1] = fields[i] end
  redis.call(unpack(a))
end

local function next_seq()
  return redis.call('INCR', KEYS[1])
end

local function index_of(list, v)
  for i, x in ipairs(list) do
    if x == v then return i end
  end
  return nil
end

local function list_at(s, i)
  return split(s or '')[i] or '0'
end

-- ---- queue membership ------------------------------------------------------------

-- Puts a waiting call into each of its queues with the score it already has
-- (a rollback keeps its place).
local function call_enqueue(callid, c)
  for _, q in ipairs(split(c.queues)) do
    redis.call('ZADD', qcallers(q), c.score, callid)
    redis.call('ZADD', qarrivals(q), c.seq, callid)
  end
end

-- Removes a call from all its queues; returns its 1-based position in each
-- (0 where it was not queued).
local function call_dequeue(callid, c)
  local pos = {}
  for i, q in ipairs(split(c.queues)) do
    local r = redis.call('ZRANK', qcallers(q), callid)
    pos[i] = r and (r + 1) or 0
    redis.call('ZREM', qcallers(q), callid)
    redis.call('ZREM', qarrivals(q), callid)
  end
  return pos
end

local function agent_enqueue(agentid, queues, seq)
  for _, q in ipairs(split(queues)) do redis.call('ZADD', qagents(q), seq, agentid) end
end

local function agent_dequeue(agentid, queues)
  for _, q in ipairs(split(queues)) do redis.call('ZREM', qagents(q), agentid) end
end

-- The agent becomes free: with `seq` (a rollback keeps its old one) or a new
-- one (the back of the agent queue). A paused agent goes to paused instead.
local function agent_make_free(agentid, a, seq)
  local k = kagent(agentid)
  if a.paused == '1' then
    redis.call('HSET', k, 'state', 'paused', 'since_ms', NOW, 'pairing', '')
    return
  end
  seq = seq or next_seq()
  redis.call('HSET', k, 'state', 'free', 'since_ms', NOW, 'free_seq', seq, 'pairing', '')
  agent_enqueue(agentid, a.queues, seq)
end

local function call_delete(callid, c)
  redis.call('DEL', kcall(callid))
  redis.call('SREM', key('node', c.node, 'calls'), callid)
end

local function agent_delete(agentid, a)
  redis.call('DEL', kagent(agentid))
  redis.call('SREM', key('node', a.node, 'agents'), agentid)
end

-- Deletes a pairing record and says so in the stream: every PAIRED has
-- exactly one UNPAIRED, which is what lets a checker prove that no caller or
-- agent is ever in two pairings at once.
local function pairing_end(pid, p, reason, detail)
  redis.call('DEL', kpairing(pid))
  redis.call('SREM', key('node', p.caller_node, 'pairings'), pid)
  redis.call('SREM', key('node', p.agent_node, 'pairings'), pid)
  emit('UNPAIRED', p.queue, p.call, p.agent, {'pairing', pid, 'reason', reason,
       'detail', detail or ''})
end

-- ---- pairing -------------------------------------------------------------------

local function front(k)
  local r = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if r[1] then return r[1], tonumber(r[2]) end
  return nil
end

-- A pairing as replies carry it (SCHEMA.md: "A *pairing* in a reply").
local function pairing_reply(pid, p)
  return {'pairing', pid, 'call', p.call, 'agent', p.agent, 'queue', p.queue,
          'caller_channel', p.caller_channel, 'agent_channel', p.agent_channel,
          'caller_node', p.caller_node, 'agent_node', p.agent_node,
          'created_ms', tonumber(p.created_ms), 'holdtime_ms', tonumber(p.holdtime_ms)}
end

-- Pairs call `callid` with agent `agentid` in queue q: both leave every
-- queue, the pairing record is written. Returns the reply form of it.
local function pair_one(q, callid, c, agentid, a)
  local pid = 'p' .. next_seq()
  local pos = call_dequeue(callid, c)
  agent_dequeue(agentid, a.queues)
  redis.call('HSET', kcall(callid), 'state', 'paired', 'pairing', pid, 'paired_ms', NOW,
             'pairpos', table.concat(pos, '&'))
  redis.call('HSET', kagent(agentid), 'state', 'paired', 'pairing', pid, 'since_ms', NOW)
  local hold = span(c.entered_ms, NOW)
  local rec = {'call', callid, 'agent', agentid, 'queue', q,
               'caller_channel', c.channel, 'agent_channel', a.channel,
               'caller_node', c.node, 'agent_node', a.node,
               'created_ms', NOW, 'holdtime_ms', fmt(hold)}
  redis.call('HSET', kpairing(pid), 'state', 'paired', unpack(rec))
  redis.call('SADD', key('node', c.node, 'pairings'), pid)
  redis.call('SADD', key('node', a.node, 'pairings'), pid)
  emit('PAIRED', q, callid, agentid, {'pairing', pid, 'caller_channel', c.channel,
       'agent_channel', a.channel, 'caller_node', c.node, 'agent_node', a.node,
       'holdtime_ms', fmt(hold)})
  -- The caller's node carries a pairing out; one made elsewhere is handed to
  -- it through its command stream (a reply only reaches the node that ran
  -- the op).
  -- The agent's node, when it is another one, is told too: it expects the
  -- link and need not read the pairing when it comes.
  local tell = {}
  if c.node ~= NODE then tell[#tell + 1] = c.node end
  if a.node ~= c.node and a.node ~= NODE then tell[#tell + 1] = a.node end
  for _, n in ipairs(tell) do
    redis.call('XADD', key('node', n, 'cmds'), 'MAXLEN', '~', CMDS_MAXLEN, '*',
               'cmd', 'pair', 'pairing', pid, unpack(rec))
  end
  return pairing_reply(pid, {call = callid, agent = agentid, queue = q,
                              caller_channel = c.channel, agent_channel = a.channel,
                              caller_node = c.node, agent_node = a.node,
                              created_ms = NOW, holdtime_ms = hold})
end

-- ---- draining nodes ---------------------------------------------------------

-- A draining node starts no new call: while its flag
-- {NS}:node:<n>:draining exists, the pairing loop passes over its waiting
-- callers and free agents (they keep their places). {NS}:draining indexes
-- the nodes that set a flag, so when nobody drains a pairing loop pays one
-- SCARD and reads the fronts as it always did.
local SKIP_PAGE, SKIP_MAX = 16, 256 -- zset members read per ZRANGE; passed over at most

local function kdraining(n) return key('node', n, 'draining') end

-- The set of nodes draining now (node -> true), or nil when none is. An
-- index member whose flag lapsed (or was deleted by hand) leaves the index.
local function draining_nodes()
  local idx = P .. 'draining'
  if redis.call('SCARD', idx) == 0 then return nil end
  local set
  for _, n in ipairs(redis.call('SMEMBERS', idx)) do
    if redis.call('EXISTS', kdraining(n)) == 1 then
      set = set or {}
      set[n] = true
    else
      redis.call('SREM', idx, n)
    end
  end
  return set
end

-- The first member of zset k (a queue's callers or free agents, in score
-- order) whose party is not on a draining node: its id and score, or nil
-- when none is left or SKIP_MAX were passed over (then the queue is given up
-- for this loop). rec names the party's record; a member without one is
-- not passed over (the loop drops it). st caches, for one pairing loop,
-- each record's node and each zset's count of leading members passed over:
-- the loop removes only members it did not pass over, and adds none, so
-- those ranks keep holding the same draining parties.
local function first_open(k, rec, drain, st)
  local skip = st.skip[k] or 0
  while skip < SKIP_MAX do
    local r = redis.call('ZRANGE', k, skip, skip + SKIP_PAGE - 1, 'WITHSCORES')
    for i = 1, #r, 2 do
      local rk = rec(r[i])
      local n = st.node[rk]
      if n == nil then
        n = redis.call('HGET', rk, 'node')
        st.node[rk] = n
      end
      if not (n and drain[n]) then
        st.skip[k] = skip
        return r[i], tonumber(r[i + 1])
      end
      skip = skip + 1
      if skip >= SKIP_MAX then break end
    end
    if #r < 2 * SKIP_PAGE then break end
  end
  st.skip[k] = skip
  return nil
end

-- The head of zset k for pairing: its front, or with a node draining the
-- first member not on one.
local function head(k, rec, drain, st)
  if not drain then return front(k) end
  return first_open(k, rec, drain, st)
end

-- The best pair among `queues`: the queue whose front caller has the lowest
-- score (highest priority, then earliest arrival, over all nodes); on a tie
-- (the same caller heads several queues) the agent free the longest. The
-- parties of draining nodes are passed over: "front" is the first one not
-- on a draining node.
local function best_pair(queues, drain, st)
  local bq, bc, bcs, ba, bas
  for _, q in ipairs(queues) do
    local c, cs = head(qcallers(q), kcall, drain, st)
    local a, as
    if c then a, as = head(qagents(q), kagent, drain, st) end
    if a and (not bq or cs < bcs or (cs == bcs and as < bas)) then
      bq, bc, bcs, ba, bas = q, c, cs, a, as
    end
  end
  return bq, bc, ba
end

-- Pairs while some queue of `queues` has both a waiting caller and a free
-- agent not on draining nodes, at most max times. A zset member without a
-- record (which no op leaves, but Redis is shared) is dropped rather than
-- paired.
local function pair_loop(queues, max)
  local out = {}
  local drain, st = draining_nodes(), {skip = {}, node = {}}
  for _ = 1, max * 2 + 4 do
    if #out >= max then break end
    local q, callid, agentid = best_pair(queues, drain, st)
    if not q then break end
    local c, a = hgetall(kcall(callid)), hgetall(kagent(agentid))
    if not c or c.state ~= 'waiting' then
      redis.call('ZREM', qcallers(q), callid)
      redis.call('ZREM', qarrivals(q), callid)
    elseif not a or a.state ~= 'free' then
      redis.call('ZREM', qagents(q), agentid)
    else
      out[#out + 1] = pair_one(q, callid, c, agentid, a)
    end
  end
  return out
end

local function autopair(flag, queues, max)
  if flag == 1 then return pair_loop(queues, max) end
  return {}
end

-- ---- caller ops -------------------------------------------------------------------

-- enter: callid channel priority cid_num cid_name queues autopair max_pairs
-- KEYS[3] {NS}:call:<callid>
local function op_enter()
  check_nargs(8)
  local callid = check_id(ARGV[5], 'call id', ID_MAX)
  local channel = check_id(ARGV[6], 'channel', ID_MAX)
  local prio = check_int(ARGV[7], 'priority', 0, 1000)
  local num, name = check_text(ARGV[8], 'caller number'), check_text(ARGV[9], 'caller name')
  local queues = check_queues(ARGV[10])
  local ap = check_int(ARGV[11], 'autopair', 0, 1)
  local max = check_int(ARGV[12], 'max_pairs', 1, PAIRS_MAX)
  check_key(3, kcall(callid))
  local old = hgetall(KEYS[3])
  if old and old.channel == channel and old.node == NODE and old.queues == ARGV[10] and
     (old.state == 'waiting' or old.state == 'paired') then
    -- the same enter again: its reply was lost with the connection (the
    -- node sends it again) and this is what the first one did
    local pos = {}
    for i, q in ipairs(queues) do
      local r = redis.call('ZRANK', qcallers(q), callid)
      pos[i] = r and (r + 1) or 0
    end
    return {'seq', tonumber(old.seq), 'score', tonumber(old.score), 'positions', pos,
            'pairings', autopair(ap, queues, max)}
  end
  if old then raise('EXISTS', 'call ' .. callid .. ' is already queued') end
  local seq = next_seq()
  local c = {queues = ARGV[10], seq = seq, score = fmt((1000 - prio) * PRIO_SHIFT + seq)}
  call_enqueue(callid, c)
  local pos = {}
  for i, q in ipairs(queues) do pos[i] = redis.call('ZRANK', qcallers(q), callid) + 1 end
  redis.call('HSET', KEYS[3], 'channel', channel, 'node', NODE, 'queues', ARGV[10],
             'priority', prio, 'seq', seq, 'score', c.score, 'entered_ms', NOW,
             'state', 'waiting', 'pairing', '', 'opos', table.concat(pos, '&'),
             'cid_num', num, 'cid_name', name)
  redis.call('SADD', key('node', NODE, 'calls'), callid)
  for i, q in ipairs(queues) do
    emit('ENTERQUEUE', q, callid, nil, {'url', '', 'callerid', num, 'position', pos[i],
         'callername', name})
  end
  return {'seq', seq, 'score', tonumber(c.score), 'positions', pos,
          'pairings', autopair(ap, queues, max)}
end

local function wait_fields(pos, opos, waited)
  return {'position', pos, 'origposition', opos, 'waittime', secs(waited),
          'waittime_ms', fmt(waited)}
end

-- Logs ABANDON / EXITWITHTIMEOUT for every queue of a call that was waiting
-- (positions now) or paired (positions when it was paired). `reason`, when
-- given, is added as the events' `reason` (reap, reconcile).
local function log_exit(ev, callid, c, pos, reason)
  local waited = span(c.entered_ms, NOW)
  for i, q in ipairs(split(c.queues)) do
    local f = wait_fields(pos[i] or 0, list_at(c.opos, i), waited)
    if reason then
      f[#f + 1] = 'reason'
      f[#f + 1] = reason
    end
    emit(ev, q, callid, nil, f)
  end
end

-- A bridged call ends: COMPLETECALLER / COMPLETEAGENT, pairing and call
-- records go, the agent is counted; returns the agent record. `note`, when
-- given, is appended to the UNPAIRED detail ("COMPLETEAGENT;restart").
local function complete(callid, c, who, note)
  local pid = c.pairing
  local p = hgetall(kpairing(pid))
  local a = hgetall(kagent(p.agent))
  local talk = span(p.bridged_ms, NOW)
  local hold = span(c.entered_ms, p.bridged_ms)
  local i = index_of(split(c.queues), p.queue) or 1
  local ev = who == 'agent' and 'COMPLETEAGENT' or 'COMPLETECALLER'
  emit(ev, p.queue, callid, p.agent, {'holdtime', secs(hold), 'calltime', secs(talk),
       'origposition', list_at(c.opos, i), 'holdtime_ms', fmt(hold), 'calltime_ms', fmt(talk),
       'pairing', pid})
  pairing_end(pid, p, 'complete', note and (ev .. ';' .. note) or ev)
  call_delete(callid, c)
  if a then
    redis.call('HINCRBY', kagent(p.agent), 'calls_taken', 1)
    redis.call('HINCRBY', kagent(p.agent), 'talk_ms', talk)
  end
  return p.agent, a, ev
end

-- After a call: wrapup_ms > 0 puts the agent in wrapup (agent_ready ends
-- it), else it is free at once with a new seq (the back of the queue).
local function agent_after_call(agentid, a, wrapup_ms)
  if wrapup_ms > 0 then
    redis.call('HSET', kagent(agentid), 'state', 'wrapup', 'since_ms', NOW, 'pairing', '',
               'wrapup_until_ms', fmt(tonumber(NOW) + wrapup_ms))
  else
    agent_make_free(agentid, a, nil)
  end
end

-- The caller is gone, whatever its state: ev (ABANDON / EXITWITHTIMEOUT)
-- while waiting or paired (a paired agent is free again keeping its place),
-- COMPLETECALLER / COMPLETEAGENT (who) when bridged (the agent to wrapup or
-- free at the back). Returns the outcome and the agent id and record freed,
-- or nil, having written nothing, when the call is paired or bridged without
-- its pairing (no op leaves that). `reason` goes into the exit events and
-- the UNPAIRED detail (reconcile); op_leave gives none.
local function leave_call(callid, c, ev, who, wrapup, reason)
  if c.state == 'waiting' then
    log_exit(ev, callid, c, call_dequeue(callid, c), reason)
    call_delete(callid, c)
    return ev
  end
  local p = hgetall(kpairing(c.pairing))
  if c.state == 'paired' and p then
    log_exit(ev, callid, c, split(c.pairpos), reason)
    pairing_end(c.pairing, p, 'abandon', reason and (ev .. ';' .. reason) or ev)
    call_delete(callid, c)
    local a = hgetall(kagent(p.agent))
    if a then agent_make_free(p.agent, a, a.free_seq) end
    return ev, p.agent, a
  end
  if c.state == 'bridged' and p then
    local agentid, a, done = complete(callid, c, who, reason)
    if a then agent_after_call(agentid, a, wrapup) end
    return done, agentid, a, true
  end
  return nil
end

-- leave: callid reason(hangup|abandon|timeout) who(caller|agent) wrapup_ms autopair max_pairs
-- The caller is gone, whatever its state. KEYS[3] {NS}:call:<callid>
local function op_leave()
  check_nargs(6)
  local callid = check_id(ARGV[5], 'call id', ID_MAX)
  local reason = check_enum(ARGV[6], 'reason', {'hangup', 'abandon', 'timeout'})
  local who = check_enum(ARGV[7], 'who', {'caller', 'agent'})
  local wrapup = check_int(ARGV[8], 'wrapup_ms', 0, 86400000)
  local ap = check_int(ARGV[9], 'autopair', 0, 1)
  local max = check_int(ARGV[10], 'max_pairs', 1, PAIRS_MAX)
  check_key(3, kcall(callid))
  local c = hgetall(KEYS[3])
  if not c then return {'outcome', 'GONE', 'pairings', {}} end
  local outcome, _, a, bridged = leave_call(callid, c,
                                            reason == 'timeout' and 'EXITWITHTIMEOUT' or 'ABANDON',
                                            who, wrapup, nil)
  if not outcome then
    raise('BADSTATE', 'call ' .. callid .. ' is ' .. tostring(c.state) .. ' without its pairing')
  end
  -- a freed agent pairs again; one sent to wrapup does not yet
  if not a or (bridged and wrapup > 0) then return {'outcome', outcome, 'pairings', {}} end
  return {'outcome', outcome, 'pairings', autopair(ap, split(a.queues), max)}
end

-- ---- agent ops ---------------------------------------------------------------------

-- agent_login: agentid channel chan_name queues autopair max_pairs
-- KEYS[3] {NS}:agent:<agentid>
local function op_agent_login()
  check_nargs(6)
  local agentid = check_id(ARGV[5], 'agent id', NAME_MAX)
  local channel = check_id(ARGV[6], 'channel', ID_MAX)
  local cname = check_text(ARGV[7], 'channel name')
  local queues = check_queues(ARGV[8])
  local ap = check_int(ARGV[9], 'autopair', 0, 1)
  local max = check_int(ARGV[10], 'max_pairs', 1, PAIRS_MAX)
  check_key(3, kagent(agentid))
  local old = hgetall(KEYS[3])
  if old and old.channel == channel and old.node == NODE and old.queues == ARGV[8] and
     (old.state == 'free' or old.state == 'paused' or old.state == 'paired') then
    -- the same login again (its reply was lost with the connection): as
    -- the first left it, or paired since by its autopair or a sweep
    return {'seq', tonumber(old.free_seq), 'pairings', autopair(ap, queues, max)}
  end
  if old then
    raise('AGENTINUSE', 'agent ' .. agentid .. ' is ' .. tostring(old.state) .. ' on node ' ..
          tostring(old.node))
  end
  local seq = next_seq()
  redis.call('HSET', KEYS[3], 'channel', channel, 'chan_name', cname, 'node', NODE,
             'queues', ARGV[8], 'state', 'free', 'paused', '0', 'pause_reason', '',
             'since_ms', NOW, 'login_ms', NOW, 'free_seq', seq, 'pairing', '',
             'calls_taken', 0, 'talk_ms', 0)
  agent_enqueue(agentid, ARGV[8], seq)
  redis.call('SADD', key('node', NODE, 'agents'), agentid)
  emit('AGENTLOGIN', nil, channel, agentid, {'channel', cname, 'queues', ARGV[8]})
  return {'seq', seq, 'pairings', autopair(ap, queues, max)}
end

-- The agent leaves while paired: its caller goes back with its original
-- score (the front of the queue), the pairing is undone.
local function unpair_for_agent(pid, p)
  local c = hgetall(kcall(p.call))
  pairing_end(pid, p, 'agent_gone', 'AGENTLOGOFF')
  if c then
    redis.call('HSET', kcall(p.call), 'state', 'waiting', 'pairing', '')
    call_enqueue(p.call, c)
    return split(c.queues)
  end
  return {}
end

-- The agent is gone, whatever its state: a paired caller goes back first
-- (REQUEUED), a bridged one is completed (COMPLETEAGENT), then AGENTLOGOFF
-- with `reason`. `note` is appended to a completion's UNPAIRED detail.
-- Returns the call outcome (NONE, REQUEUED, COMPLETEAGENT), the call id
-- ("" if none), the queues of a requeued caller, and the call record.
local function logoff_agent(agentid, a, reason, note)
  local p = a.pairing ~= '' and hgetall(kpairing(a.pairing)) or nil
  local callout, callid, requeue, c = 'NONE', '', {}, nil
  if p then
    callid = p.call
    c = hgetall(kcall(p.call))
    if p.state == 'bridged' and c then
      local _, _, ev = complete(p.call, c, 'agent', note)
      callout = ev
    else
      requeue = unpair_for_agent(a.pairing, p)
      callout = 'REQUEUED'
    end
  end
  if a.state == 'free' then agent_dequeue(agentid, a.queues) end
  agent_delete(agentid, a)
  emit('AGENTLOGOFF', nil, a.channel, agentid, {'channel', a.chan_name,
       'logintime', secs(span(a.login_ms, NOW)), 'reason', reason})
  return callout, callid, requeue, c
end

-- agent_logoff: agentid reason autopair max_pairs
-- The agent is gone (logoff or hangup), whatever its state. A caller it was
-- paired with goes back to the front; a caller it talked to is completed
-- (COMPLETEAGENT) and its record deleted: the node hangs it up.
-- KEYS[3] {NS}:agent:<agentid>
local function op_agent_logoff()
  check_nargs(4)
  local agentid = check_id(ARGV[5], 'agent id', NAME_MAX)
  local reason = check_text(ARGV[6], 'reason')
  local ap = check_int(ARGV[7], 'autopair', 0, 1)
  local max = check_int(ARGV[8], 'max_pairs', 1, PAIRS_MAX)
  check_key(3, kagent(agentid))
  local a = hgetall(KEYS[3])
  if not a then return {'outcome', 'GONE', 'call', '', 'pairings', {}} end
  local callout, callid, requeue = logoff_agent(agentid, a, reason, nil)
  return {'outcome', 'AGENTLOGOFF', 'call_outcome', callout, 'call', callid,
          'pairings', autopair(ap, requeue, max)}
end

-- agent_pause: agentid paused(0|1) reason autopair max_pairs
-- A paused agent keeps its record but is in no free-agent set; pausing
-- during a call takes effect when the call ends. Unpausing a paused agent
-- makes it free with a new seq. KEYS[3] {NS}:agent:<agentid>
local function op_agent_pause()
  check_nargs(5)
  local agentid = check_id(ARGV[5], 'agent id', NAME_MAX)
  local paused = check_int(ARGV[6], 'paused', 0, 1)
  local reason = check_text(ARGV[7], 'reason')
  local ap = check_int(ARGV[8], 'autopair', 0, 1)
  local max = check_int(ARGV[9], 'max_pairs', 1, PAIRS_MAX)
  check_key(3, kagent(agentid))
  local a = hgetall(KEYS[3])
  if not a then raise('NOTFOUND', 'agent ' .. agentid .. ' is not logged in') end
  if paused == 0 and a.paused ~= '1' then raise('BADSTATE', 'agent ' .. agentid .. ' is not paused') end
  local out = {}
  if paused == 1 then
    redis.call('HSET', KEYS[3], 'paused', '1', 'pause_reason', reason)
    if a.state == 'free' then
      agent_dequeue(agentid, a.queues)
      redis.call('HSET', KEYS[3], 'state', 'paused', 'since_ms', NOW)
    end
  else
    redis.call('HSET', KEYS[3], 'paused', '0', 'pause_reason', '')
    if a.state == 'paused' then
      a.paused = '0'
      agent_make_free(agentid, a, nil)
      out = autopair(ap, split(a.queues), max)
    end
  end
  for _, q in ipairs(split(a.queues)) do
    emit(paused == 1 and 'PAUSE' or 'UNPAUSE', q, nil, agentid, {'reason', reason})
  end
  local st = redis.call('HGET', KEYS[3], 'state')
  return {'state', st, 'pairings', out}
end

-- agent_ready: agentid autopair max_pairs -- wrapup is over.
-- KEYS[3] {NS}:agent:<agentid>
local function op_agent_ready()
  check_nargs(3)
  local agentid = check_id(ARGV[5], 'agent id', NAME_MAX)
  local ap = check_int(ARGV[6], 'autopair', 0, 1)
  local max = check_int(ARGV[7], 'max_pairs', 1, PAIRS_MAX)
  check_key(3, kagent(agentid))
  local a = hgetall(KEYS[3])
  if not a then raise('NOTFOUND', 'agent ' .. agentid .. ' is not logged in') end
  if a.state ~= 'wrapup' then raise('BADSTATE', 'agent ' .. agentid .. ' is ' .. a.state) end
  redis.call('HDEL', KEYS[3], 'wrapup_until_ms')
  agent_make_free(agentid, a, nil)
  local st = redis.call('HGET', KEYS[3], 'state')
  return {'state', st, 'pairings', autopair(ap, split(a.queues), max)}
end

-- ---- pairing ops ---------------------------------------------------------------------

-- pair: scope(queue|call|agent) id max_pairs
-- KEYS[3] {NS}:queue:<q>:callers | {NS}:call:<id> | {NS}:agent:<id>
-- A call or agent that is gone or no longer waiting/free pairs nothing: it
-- lost a race, which is normal.
local function op_pair()
  check_nargs(3)
  local scope = check_enum(ARGV[5], 'scope', {'queue', 'call', 'agent'})
  local id = check_id(ARGV[6], scope .. ' id', scope == 'call' and ID_MAX or NAME_MAX)
  local max = check_int(ARGV[7], 'max_pairs', 1, PAIRS_MAX)
  local queues
  if scope == 'queue' then
    check_key(3, qcallers(id))
    queues = {id}
  else
    check_key(3, scope == 'call' and kcall(id) or kagent(id))
    local h = hgetall(KEYS[3])
    local want = scope == 'call' and 'waiting' or 'free'
    if not h or h.state ~= want then return {'pairings', {}} end
    queues = split(h.queues)
  end
  return {'pairings', pair_loop(queues, max)}
end

-- Records that `side`'s party of paired pairing `pid` (record p, its call
-- record c; both parties exist) is in its mixing bridge: the first of two
-- sides only sets `sides`; both (or `both`) make it bridged with CONNECT
-- and WITHDRAW in the caller's other queues. Returns connected (0/1),
-- holdtime_ms and ringtime_ms (0 while not connected).
local function bridge_side(pid, p, c, side)
  local sides = p.sides or ''
  if side ~= 'both' and (sides == '' or sides == side) then
    redis.call('HSET', kpairing(pid), 'sides', side)
    return 0, 0, 0
  end
  redis.call('HSET', kpairing(pid), 'state', 'bridged', 'bridged_ms', NOW, 'sides', 'both')
  redis.call('HSET', kcall(p.call), 'state', 'bridged', 'bridged_ms', NOW)
  redis.call('HSET', kagent(p.agent), 'state', 'talking', 'since_ms', NOW)
  local hold = span(c.entered_ms, NOW)
  local ring = span(p.created_ms, NOW)
  emit('CONNECT', p.queue, p.call, p.agent, {'holdtime', secs(hold),
       'bridgedchanneluniqueid', p.agent_channel, 'ringtime', secs(ring),
       'holdtime_ms', fmt(hold), 'ringtime_ms', fmt(ring), 'pairing', pid})
  local qs = split(c.queues)
  for i, q in ipairs(qs) do
    if q ~= p.queue then
      emit('WITHDRAW', q, p.call, nil, {'position', list_at(c.pairpos, i),
           'origposition', list_at(c.opos, i), 'waittime', secs(hold),
           'withdrawinfo', 'connected:' .. p.queue})
    end
  end
  return 1, hold, ring
end

-- bridged: pairing side(caller|agent|both) -- a side's party is in its
-- mixing bridge. On one node both are (`both`); across nodes each node
-- reports its own party with the link leg, and CONNECT is written when the
-- second side is in: only then do the two parties hear each other. A side
-- reported again changes nothing. KEYS[3] {NS}:pairing:<id>
local function op_bridged()
  check_nargs(2)
  local pid = check_id(ARGV[5], 'pairing id', ID_MAX)
  local side = check_enum(ARGV[6], 'side', {'caller', 'agent', 'both'})
  check_key(3, kpairing(pid))
  local p = hgetall(KEYS[3])
  if not p then raise('NOTFOUND', 'pairing ' .. pid .. ' does not exist') end
  if p.state == 'bridged' then -- reported again (a reply lost with the connection)
    local hold = span(redis.call('HGET', kcall(p.call), 'entered_ms') or p.bridged_ms,
                      p.bridged_ms)
    return {'connected', 1, 'holdtime_ms', hold, 'ringtime_ms', span(p.created_ms, p.bridged_ms)}
  end
  if p.state ~= 'paired' then raise('BADSTATE', 'pairing ' .. pid .. ' is ' .. p.state) end
  local c = hgetall(kcall(p.call))
  if not c then raise('NOTFOUND', 'call ' .. p.call .. ' of pairing ' .. pid .. ' is gone') end
  if redis.call('EXISTS', kagent(p.agent)) == 0 then
    raise('NOTFOUND', 'agent ' .. p.agent .. ' of pairing ' .. pid .. ' is gone')
  end
  local connected, hold, ring = bridge_side(pid, p, c, side)
  return {'connected', connected, 'holdtime_ms', hold, 'ringtime_ms', ring}
end

-- Undoes paired pairing `pid` (record p): UNPAIRED rollback
-- `<reason>;agent=<to>`, the caller back with its original score, the agent
-- free with its old seq (keep), a new one (back), or paused (pause).
local function rollback_pairing(pid, p, reason, to)
  local c, a = hgetall(kcall(p.call)), hgetall(kagent(p.agent))
  pairing_end(pid, p, 'rollback', reason .. ';agent=' .. to)
  if c then
    redis.call('HSET', kcall(p.call), 'state', 'waiting', 'pairing', '')
    call_enqueue(p.call, c)
  end
  if a then
    if to == 'pause' then
      redis.call('HSET', kagent(p.agent), 'paused', '1', 'pause_reason', reason)
      a.paused = '1'
      for _, q in ipairs(split(a.queues)) do emit('PAUSE', q, nil, p.agent, {'reason', reason}) end
    end
    agent_make_free(p.agent, a, to == 'keep' and a.free_seq or nil)
  end
end

-- rollback: pairing reason agent_to(keep|back|pause)
-- The link or bridge could not be made: the caller goes back with its
-- original score; the agent is free again with its old free-since seq
-- (keep), a new one (back), or paused with the reason (pause).
-- KEYS[3] {NS}:pairing:<id>
local function op_rollback()
  check_nargs(3)
  local pid = check_id(ARGV[5], 'pairing id', ID_MAX)
  local reason = check_text(ARGV[6], 'reason')
  local to = check_enum(ARGV[7], 'agent_to', {'keep', 'back', 'pause'})
  check_key(3, kpairing(pid))
  local p = hgetall(KEYS[3])
  if not p then return {'outcome', 'GONE'} end
  if p.state ~= 'paired' then raise('BADSTATE', 'pairing ' .. pid .. ' is ' .. p.state) end
  rollback_pairing(pid, p, reason, to)
  return {'outcome', 'ROLLEDBACK'}
end

-- ---- recordings ----------------------------------------------------------------------

local REC_FROM = {pause = {recording = true}, unpause = {paused = true},
                  stop = {recording = true, paused = true},
                  discard = {recording = true, paused = true, stored = true}}
local REC_TO = {pause = 'paused', unpause = 'recording', stop = 'stored', discard = 'discarded'}
local REC_EV = {start = 'RECORDSTART', pause = 'RECORDPAUSE', unpause = 'RECORDUNPAUSE',
                stop = 'RECORDSTOP', discard = 'RECORDDISCARD'}

-- What the party of one side is now, for unlink's reply: a call's state
-- (`waiting`, `paired`, `bridged`) or an agent's (`free`, `paused`,
-- `wrapup`, `paired`, `talking`), `gone` without a record; its pairing; for
-- an agent in wrapup, the ms left of it.
local function party_view(side, id)
  local h = hgetall(side == 'caller' and kcall(id) or kagent(id))
  if not h then return {'state', 'gone', 'pairing', '', 'wrapup_ms', 0} end
  local left = 0
  if h.state == 'wrapup' then left = span(NOW, h.wrapup_until_ms or NOW) end
  return {'state', h.state, 'pairing', h.pairing or '', 'wrapup_ms', left}
end

-- The link of cross-node pairing `pid` (record p) is gone and `side`'s
-- party is still there. Paired: undone, the caller back with its score, the
-- agent free at the back (UNPAIRED rollback `<reason>;agent=back`).
-- Bridged: completed as if the far side hung up, the agent to wrapup or
-- free; `note` is appended to the UNPAIRED detail. Returns the outcome
-- (ROLLEDBACK, COMPLETEAGENT, COMPLETECALLER, COMPLETE) and the agent
-- record as it was before (nil without one).
local function unlink_pairing(pid, p, side, reason, wrapup, note)
  if p.state == 'paired' then
    local a = hgetall(kagent(p.agent))
    pairing_end(pid, p, 'rollback', reason .. ';agent=back')
    local c = hgetall(kcall(p.call))
    if c then
      redis.call('HSET', kcall(p.call), 'state', 'waiting', 'pairing', '')
      call_enqueue(p.call, c)
    end
    if a then agent_make_free(p.agent, a, nil) end
    return 'ROLLEDBACK', a
  end
  local c = hgetall(kcall(p.call))
  if c then
    local agentid, a, ev = complete(p.call, c, side == 'caller' and 'agent' or 'caller', note)
    if a then agent_after_call(agentid, a, wrapup) end
    return ev, a
  end
  -- bridged without its call record: no op leaves that; end it
  pairing_end(pid, p, 'complete', 'unlink:' .. reason)
  local a = hgetall(kagent(p.agent))
  if a then agent_after_call(p.agent, a, wrapup) end
  return 'COMPLETE', a
end

-- unlink: pairing side(caller|agent) party reason wrapup_ms autopair max_pairs
-- The link between the two nodes of a pairing is gone (hung up, dropped,
-- never answered) while `side`'s party (its call id or agent id) is still
-- there. A pairing not yet connected is undone like a rollback: the caller
-- back with its score (the front), the agent free at the back (its link
-- failed: agents free since later go first), and no autopair: the sweep
-- pairs again, so a link that keeps failing is retried at the sweep's pace,
-- not in a loop. A connected one is completed as if the far side hung up
-- (COMPLETEAGENT reported by the caller's side, COMPLETECALLER by the
-- agent's), the agent to wrapup or free (then autopair). A pairing already
-- gone: nothing (the other side, or a party's own end, was first). The
-- reply says what the party is now, so the node knows what to do with it.
-- KEYS[3] {NS}:pairing:<id>
local function op_unlink()
  check_nargs(7)
  local pid = check_id(ARGV[5], 'pairing id', ID_MAX)
  local side = check_enum(ARGV[6], 'side', {'caller', 'agent'})
  local party = check_id(ARGV[7], 'party', side == 'caller' and ID_MAX or NAME_MAX)
  local reason = check_text(ARGV[8], 'reason')
  local wrapup = check_int(ARGV[9], 'wrapup_ms', 0, 86400000)
  local ap = check_int(ARGV[10], 'autopair', 0, 1)
  local max = check_int(ARGV[11], 'max_pairs', 1, PAIRS_MAX)
  check_key(3, kpairing(pid))
  local p = hgetall(KEYS[3])
  if p and party ~= (side == 'caller' and p.call or p.agent) then
    bad('pairing ' .. pid .. ' is not the ' .. side .. ' side of ' .. party)
  end
  local outcome, pairs = 'GONE', {}
  if p then
    local a
    outcome, a = unlink_pairing(pid, p, side, reason, wrapup, nil)
    if a and outcome ~= 'ROLLEDBACK' and outcome ~= 'COMPLETE' then
      pairs = autopair(wrapup == 0 and ap or 0, split(a.queues), max)
    end
  end
  local out = {'outcome', outcome}
  for _, v in ipairs(party_view(side, party)) do out[#out + 1] = v end
  out[#out + 1] = 'pairings'
  out[#out + 1] = pairs
  return out
end

local function rec_start(k, name, pid, file)
  if redis.call('EXISTS', k) == 1 then raise('EXISTS', 'recording ' .. name .. ' exists') end
  -- A start held while Redis was away may come after its pairing ended (the
  -- other node's writes came first): Asterisk has the recording all the
  -- same, so it is recorded, its call's names unknown (NONE).
  local p = hgetall(kpairing(pid)) or {queue = 'NONE', agent = 'NONE', call = 'NONE'}
  redis.call('HSET', k, 'pairing', pid, 'queue', p.queue, 'agent', p.agent, 'call', p.call,
             'started_ms', NOW, 'state', 'recording', 'file', file, 'spans', '',
             'paused_ms', 0, 'node', NODE)
  -- the pairing names its running recording, for a restarted node to find
  if p.state then redis.call('HSET', kpairing(pid), 'rec', name) end
  -- the index of every recording by start time (agentd lists them)
  redis.call('ZADD', key('recordings'), NOW, name)
  return p.queue, p.call, p.agent
end

-- Closes an open pause span ("from-to" joined by ","), adding its length.
local function rec_close_span(k, r)
  if r.state ~= 'paused' then return end
  local one = r.pause_from .. '-' .. NOW
  local spans = r.spans == '' and one or (r.spans .. ',' .. one)
  redis.call('HSET', k, 'spans', spans)
  redis.call('HINCRBY', k, 'paused_ms', span(r.pause_from, NOW))
  redis.call('HDEL', k, 'pause_from')
end

-- rec delete: the file was deleted from Asterisk; the record and its index
-- entry go. Not while it records (BADSTATE): stop it first.
local function rec_delete(k, name)
  local st = redis.call('HGET', k, 'state')
  if not st then raise('NOTFOUND', 'recording ' .. name .. ' does not exist') end
  if st == 'recording' or st == 'paused' then
    raise('BADSTATE', 'recording ' .. name .. ' is ' .. st)
  end
  redis.call('DEL', k)
  redis.call('ZREM', key('recordings'), name)
  return {'state', 'deleted'}
end

-- rec: action(start|pause|unpause|stop|discard|delete) name pairing file ttl_ms
-- pairing and file matter for start only ("" otherwise); ttl_ms > 0 sets
-- the record's lifetime when it reaches stored or discarded.
-- KEYS[3] {NS}:recording:<name>
local function op_rec()
  check_nargs(5)
  local action = check_enum(ARGV[5], 'action',
                            {'start', 'pause', 'unpause', 'stop', 'discard', 'delete'})
  local name = check_id(ARGV[6], 'recording name', ID_MAX)
  local ttl = check_int(ARGV[9], 'ttl_ms', 0, 31536000000)
  check_key(3, key('recording', name))
  local k = KEYS[3]
  if action == 'delete' then return rec_delete(k, name) end
  if action == 'start' then
    local pid = check_id(ARGV[7], 'pairing id', ID_MAX)
    local file = check_text(ARGV[8], 'file')
    local q, c, a = rec_start(k, name, pid, file)
    emit('RECORDSTART', q, c, a, {'recording', name, 'file', file, 'pairing', pid})
    return {'state', 'recording'}
  end
  local r = hgetall(k)
  if not r then raise('NOTFOUND', 'recording ' .. name .. ' does not exist') end
  if not REC_FROM[action][r.state] then
    raise('BADSTATE', 'recording ' .. name .. ' is ' .. tostring(r.state))
  end
  if action ~= 'pause' then rec_close_span(k, r) end
  redis.call('HSET', k, 'state', REC_TO[action])
  if action == 'pause' then redis.call('HSET', k, 'pause_from', NOW) end
  if action == 'stop' or (action == 'discard' and r.state ~= 'stored') then
    redis.call('HSET', k, 'ended_ms', NOW)
  end
  if ttl > 0 and (action == 'stop' or action == 'discard') then redis.call('PEXPIRE', k, ttl) end
  -- no longer running: the pairing (when it still exists) names none
  if (action == 'stop' or action == 'discard') and (r.pairing or '') ~= '' and
     redis.call('HGET', kpairing(r.pairing), 'rec') == name then
    redis.call('HSET', kpairing(r.pairing), 'rec', '')
  end
  local f = redis.call('HMGET', k, 'paused_ms', 'started_ms', 'ended_ms')
  local fields = {'recording', name, 'file', r.file, 'pairing', r.pairing, 'paused_ms', f[1]}
  if f[3] then
    fields[#fields + 1] = 'duration_ms'
    fields[#fields + 1] = fmt(math.max(0, span(f[2], f[3]) - tonumber(f[1])))
  end
  emit(REC_EV[action], r.queue, r.call, r.agent, fields)
  return {'state', REC_TO[action]}
end

-- ---- reaping a dead node ------------------------------------------------------------

-- A pairing with a party on the dead node ends: bridged, the call is
-- completed as if the dead side hung up and a live agent is free at the
-- back; paired, it is undone and the live side gets its place back. The
-- dead side's own records go in the loops of op_reap.
local function reap_pairing(pid, dead, reason)
  local p = hgetall(kpairing(pid))
  if not p then
    redis.call('SREM', key('node', dead, 'pairings'), pid)
    return
  end
  local c, a = hgetall(kcall(p.call)), hgetall(kagent(p.agent))
  if p.state == 'bridged' and c then
    local agentid, a2 = complete(p.call, c, p.caller_node == dead and 'caller' or 'agent')
    if a2 and p.agent_node ~= dead then agent_after_call(agentid, a2, 0) end
    return
  end
  pairing_end(pid, p, 'rollback', 'node ' .. dead .. ' lost;' .. reason)
  if c and p.caller_node ~= dead then
    redis.call('HSET', kcall(p.call), 'state', 'waiting', 'pairing', '')
    call_enqueue(p.call, c)
  end
  if a and p.agent_node ~= dead then agent_make_free(p.agent, a, a.free_seq) end
end

-- A dead node's call goes: ABANDON in each of its queues (positions now if
-- waiting, at pairing time if it was paired), with the reason.
local function reap_call(callid, dead, reason)
  local c = hgetall(kcall(callid))
  if not c then
    redis.call('SREM', key('node', dead, 'calls'), callid)
    return
  end
  local pos = c.state == 'waiting' and call_dequeue(callid, c) or split(c.pairpos)
  local waited = span(c.entered_ms, NOW)
  for i, q in ipairs(split(c.queues)) do
    local f = wait_fields(pos[i] or 0, list_at(c.opos, i), waited)
    f[#f + 1] = 'reason'
    f[#f + 1] = reason
    emit('ABANDON', q, callid, nil, f)
  end
  call_delete(callid, c)
end

local function reap_agent(agentid, dead, reason)
  local a = hgetall(kagent(agentid))
  if not a then
    redis.call('SREM', key('node', dead, 'agents'), agentid)
    return
  end
  if a.state == 'free' then agent_dequeue(agentid, a.queues) end
  agent_delete(agentid, a)
  emit('AGENTLOGOFF', nil, a.channel, agentid, {'channel', a.chan_name,
       'logintime', secs(span(a.login_ms, NOW)), 'reason', reason})
end

-- Runs fn over at most budget members of a set; returns how many it did.
local function reap_set(k, budget, fn, dead, reason)
  local n = 0
  for _, id in ipairs(redis.call('SMEMBERS', k)) do
    if n >= budget then break end
    fn(id, dead, reason)
    n = n + 1
  end
  return n
end

-- reap: node reason max_items
-- The entries of a node whose heartbeat lapsed: its pairings end, its
-- callers are abandoned, its agents logged off (events carry the reason),
-- at most max_items records per call (call again while `more` is 1). A node
-- with a live heartbeat is refused; running it again changes nothing.
-- KEYS[3] {NS}:node:<node>:heartbeat
local function op_reap()
  check_nargs(3)
  local dead = check_id(ARGV[5], 'node id', ID_MAX)
  local reason = check_text(ARGV[6], 'reason')
  local max = check_int(ARGV[7], 'max_items', 1, 100000)
  check_key(3, key('node', dead, 'heartbeat'))
  if redis.call('EXISTS', KEYS[3]) == 1 then raise('BADSTATE', 'node ' .. dead .. ' is alive') end
  local np = reap_set(key('node', dead, 'pairings'), max, reap_pairing, dead, reason)
  local nc = reap_set(key('node', dead, 'calls'), max - np, reap_call, dead, reason)
  local na = reap_set(key('node', dead, 'agents'), max - np - nc, reap_agent, dead, reason)
  local left = redis.call('EXISTS', key('node', dead, 'pairings'), key('node', dead, 'calls'),
                          key('node', dead, 'agents'))
  if left == 0 then redis.call('SREM', P .. 'nodes', dead) end
  return {'pairings', np, 'calls', nc, 'agents', na, 'more', left > 0 and 1 or 0}
end

-- ---- draining a node ---------------------------------------------------------------

-- Ends NODE's drain: the flag and its index entry go; NODEDRAIN off (with
-- `reason` when given) when there was a flag. Returns whether there was.
local function drain_off(reason)
  local was = redis.call('DEL', kdraining(NODE)) == 1
  redis.call('SREM', P .. 'draining', NODE)
  if was then
    local f = {'state', 'off', 'ttl_ms', '0'}
    if reason then
      f[#f + 1] = 'reason'
      f[#f + 1] = reason
    end
    emit('NODEDRAIN', nil, nil, nil, f)
  end
  return was
end

-- node_drain: state(on|off) ttl_ms
-- on: the running node starts no new call; its waiting callers and free
-- agents stay where they are, passed over by every pairing, until off or
-- until the flag lapses ttl_ms (1..86400000) later, so a drainer that dies
-- does not hold its parties for good. On while on renews the TTL and keeps
-- the start time. ttl_ms is 0..86400000 and ignored with off. NODEDRAIN is
-- written when the state changes (a lapse writes none: nothing runs then).
-- KEYS[3] {NS}:node:<NODE>:draining
local function op_node_drain()
  check_nargs(2)
  local on = check_enum(ARGV[5], 'state', {'on', 'off'}) == 'on'
  local ttl = check_int(ARGV[6], 'ttl_ms', on and 1 or 0, 86400000)
  check_key(3, kdraining(NODE))
  if not on then
    return {'outcome', drain_off(nil) and 'STOPPED' or 'NOTDRAINING', 'state', 'off'}
  end
  local outcome = 'RENEWED'
  if redis.call('PEXPIRE', KEYS[3], ttl) == 0 then
    redis.call('SET', KEYS[3], NOW, 'PX', ttl)
    emit('NODEDRAIN', nil, nil, nil, {'state', 'on', 'ttl_ms', fmt(ttl)})
    outcome = 'STARTED'
  end
  redis.call('SADD', P .. 'draining', NODE)
  return {'outcome', outcome, 'state', 'on'}
end

-- ---- re-adopting after a restart --------------------------------------------------

local ALIVE_MAX, KEEP_MAX = 200000, 100000
local RESTART = 'restart'
local CALL_REC = {'channel', 'state', 'pairing', 'queues', 'priority', 'seq', 'score',
                  'entered_ms', 'ann_ms', 'anns', 'cid_num', 'cid_name'}
local AGENT_REC = {'channel', 'chan_name', 'state', 'queues', 'paused', 'pause_reason',
                   'since_ms', 'wrapup_until_ms', 'pairing', 'free_seq'}

-- reconcile's arguments: the set of live channels and the keep triples by
-- pairing ({chan1, chan2}). Every one is checked before anything is read.
local function reconcile_args()
  local nalive = check_int(ARGV[5], 'nalive', 0, ALIVE_MAX)
  if #ARGV < 6 + nalive then
    bad('expected at least ' .. (6 + nalive) .. ' arguments, got ' .. #ARGV)
  end
  local alive = {}
  for i = 6, 5 + nalive do alive[check_id(ARGV[i], 'alive channel', ID_MAX)] = true end
  local nkeep = check_int(ARGV[6 + nalive], 'nkeep', 0, KEEP_MAX)
  check_nargs(2 + nalive + 3 * nkeep)
  local keep = {}
  for i = 7 + nalive, 6 + nalive + 3 * nkeep, 3 do
    local pid = check_id(ARGV[i], 'keep pairing', ID_MAX)
    local c1 = check_id(ARGV[i + 1], 'keep channel', ID_MAX)
    local c2 = check_id(ARGV[i + 2], 'keep channel', ID_MAX)
    if c1 == c2 then bad('keep ' .. pid .. ' names one channel twice') end
    if keep[pid] then bad('keep ' .. pid .. ' given twice') end
    keep[pid] = {c1, c2}
  end
  return alive, keep
end

-- NODE's side of a pairing: `both` (caller and agent here), `caller`
-- (OUT: the link goes out from here), `agent` (IN), nil (not ours).
local function our_side(p)
  if p.caller_node == NODE then return p.agent_node == NODE and 'both' or 'caller' end
  if p.agent_node == NODE then return 'agent' end
  return nil
end

-- Whether keep triple k ({chan1, chan2}, both live) is the bridge of
-- pairing pid on `side`: both: the caller's and the agent's channels; caller:
-- the caller's and our link leg ariq-lo-<pid>; agent: the agent's and any
-- other (the link leg that came in). Returns the link channel (IN; "" for
-- the others), or nil when it is not.
local function kept_link(pid, p, side, k, alive)
  if not k or not alive[k[1]] or not alive[k[2]] then return nil end
  local mine = side == 'agent' and p.agent_channel or p.caller_channel
  local other
  if k[1] == mine then other = k[2] elseif k[2] == mine then other = k[1] else return nil end
  if side == 'both' then return other == p.agent_channel and '' or nil end
  if side == 'caller' then return other == 'ariq-lo-' .. pid and '' or nil end
  return other
end

local function hangup_add(st, ch)
  if ch and st.alive[ch] and not st.hung[ch] then
    st.hung[ch] = true
    st.hangup[#st.hangup + 1] = ch
  end
end

-- Step 1, one pairing of NODE. Kept (its bridge holds what it should and
-- both parties have records): our side is recorded as `bridged` does. Not
-- kept, with our parties' channels alive: LOCAL paired is rolled back
-- (keep), LOCAL bridged completed (COMPLETEAGENT: the caller is hung up, the
-- agent stays), OUT/IN unlinked from our side. A party whose channel is gone
-- is left to steps 2 and 3, which end it as its hangup would.
local function reconcile_pairing(pid, st)
  local p = hgetall(kpairing(pid))
  local side = p and our_side(p)
  if not side then -- no op leaves these
    redis.call('SREM', key('node', NODE, 'pairings'), pid)
    return
  end
  local c, a = hgetall(kcall(p.call)), hgetall(kagent(p.agent))
  local link = c and a and kept_link(pid, p, side, st.keep[pid], st.alive)
  if link then
    local sides = p.sides or ''
    if p.state == 'paired' and sides ~= 'both' and sides ~= side then
      bridge_side(pid, p, c, side)
    end
    st.kept[#st.kept + 1] = {pid, link}
    return
  end
  if (side ~= 'agent' and not st.alive[p.caller_channel]) or
     (side ~= 'caller' and not st.alive[p.agent_channel]) then
    return
  end
  if side == 'both' and p.state == 'paired' then
    rollback_pairing(pid, p, RESTART, 'keep')
    st.rolled_back = st.rolled_back + 1
    return
  end
  -- LOCAL bridged: the caller's side loses its agent, as an unlink would
  local out = unlink_pairing(pid, p, side == 'agent' and 'agent' or 'caller', RESTART, 0, RESTART)
  if side == 'both' then
    st.completed = st.completed + 1
  else
    st.unlinked = st.unlinked + 1
  end
  if out == 'COMPLETEAGENT' then hangup_add(st, p.caller_channel) end
end

-- Step 2, one call of NODE: its channel gone, it ends as the caller's
-- hangup does (leave hangup by the caller), the events saying `restart`.
-- A live one's fields (CALL_REC) are kept for the reply, read once.
local function reconcile_call(callid, st)
  local v = redis.call('HMGET', kcall(callid), unpack(CALL_REC))
  if not v[1] then
    redis.call('SREM', key('node', NODE, 'calls'), callid)
    return
  end
  if st.alive[v[1]] then
    st.calls[#st.calls + 1] = callid
    st.callv[callid] = v
    return
  end
  local c = hgetall(kcall(callid))
  if not leave_call(callid, c, 'ABANDON', 'caller', 0, RESTART) then
    reap_call(callid, NODE, RESTART) -- paired or bridged without its pairing
  end
  st.abandoned = st.abandoned + 1
end

-- Step 3, one agent of NODE: its channel gone, it is logged off; a caller
-- here it talked to is completed (COMPLETEAGENT) and hung up.
local function reconcile_agent(agentid, st)
  local ch = redis.call('HGET', kagent(agentid), 'channel')
  if not ch then
    redis.call('SREM', key('node', NODE, 'agents'), agentid)
    return
  end
  if st.alive[ch] then return end
  local callout, callid, _, c = logoff_agent(agentid, hgetall(kagent(agentid)),
                                             RESTART .. ': channel gone', RESTART)
  st.dirty[callid] = true -- its call was requeued or ended: read it again
  if callout == 'COMPLETEAGENT' and c.node == NODE then hangup_add(st, c.channel) end
  st.logged_off = st.logged_off + 1
end

local function num(v)
  return tonumber(v or '0') or 0
end

-- The records NODE has left, as the reply carries them: the live calls
-- step 2 read, again where step 3 changed them.
local function reconcile_calls(st)
  local out = {}
  for _, id in ipairs(st.calls) do
    local v = st.callv[id]
    if st.dirty[id] then v = redis.call('HMGET', kcall(id), unpack(CALL_REC)) end
    if v[1] then
      out[#out + 1] = {'callid', id, 'channel', v[1], 'state', v[2], 'pairing', v[3] or '',
                       'queues', v[4], 'priority', num(v[5]), 'seq', num(v[6]),
                       'score', num(v[7]), 'entered_ms', num(v[8]), 'ann_ms', num(v[9]),
                       'anns', num(v[10]), 'cid_num', v[11] or '', 'cid_name', v[12] or ''}
    end
  end
  return out
end

local function reconcile_agents()
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', key('node', NODE, 'agents'))) do
    local v = redis.call('HMGET', kagent(id), unpack(AGENT_REC))
    if v[1] then
      out[#out + 1] = {'agentid', id, 'channel', v[1], 'chan_name', v[2] or '',
                       'state', v[3], 'queues', v[4], 'paused', num(v[5]),
                       'pause_reason', v[6] or '', 'since_ms', num(v[7]),
                       'wrapup_until_ms', num(v[8]), 'pairing', v[9] or '',
                       'free_seq', num(v[10])}
    end
  end
  return out
end

-- A kept pairing: the usual fields, its state and sides now, the link leg
-- (IN), and its running recording ("" when none is recording or paused).
local function reconcile_kept(st)
  local out = {}
  for _, k in ipairs(st.kept) do
    local p = hgetall(kpairing(k[1]))
    if p then
      local rec, rs = p.rec or '', ''
      if rec ~= '' then rs = redis.call('HGET', key('recording', rec), 'state') or '' end
      if rs ~= 'recording' and rs ~= 'paused' then rec, rs = '', '' end
      local r = pairing_reply(k[1], p)
      for _, x in ipairs({'state', p.state, 'sides', p.sides or '', 'link_channel', k[2],
                          'rec', rec, 'rec_state', rs}) do
        r[#r + 1] = x
      end
      out[#out + 1] = r
    end
  end
  return out
end

-- reconcile: nalive channel... nkeep (pairing chan1 chan2)...
-- A node restarted (its process killed) tells what its Asterisk still has:
-- every live channel, and each mixing bridge ariq-mix-<pairing> holding two
-- of them. What died ends as if it had hung up, what is bridged is recorded,
-- the node's draining flag is cleared (a node that starts is not draining),
-- and the reply is everything the node has left to re-adopt. No autopair:
-- the node pairs again once it holds its legs. SCHEMA.md has the steps.
-- KEYS[3] {NS}:node:<NODE>:calls
local function op_reconcile()
  local alive, keep = reconcile_args()
  check_key(3, key('node', NODE, 'calls'))
  local st = {alive = alive, keep = keep, kept = {}, hangup = {}, hung = {}, calls = {},
              callv = {}, dirty = {},
              rolled_back = 0, unlinked = 0, completed = 0, abandoned = 0, logged_off = 0}
  drain_off(RESTART) -- a node that starts is not draining
  for _, pid in ipairs(redis.call('SMEMBERS', key('node', NODE, 'pairings'))) do
    reconcile_pairing(pid, st)
  end
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do reconcile_call(id, st) end
  for _, id in ipairs(redis.call('SMEMBERS', key('node', NODE, 'agents'))) do
    reconcile_agent(id, st)
  end
  return {'seq', num(redis.call('GET', KEYS[1])), 'calls', reconcile_calls(st),
          'agents', reconcile_agents(), 'pairings', reconcile_kept(st),
          'hangup', st.hangup, 'rolled_back', st.rolled_back, 'unlinked', st.unlinked,
          'completed', st.completed, 'abandoned', st.abandoned,
          'logged_off', st.logged_off}
end

-- ---- restoring after Redis lost its data --------------------------------------------

-- A node re-registers the parties it serves after Redis came back empty (a
-- new server, lost data). The counts are bounded so that the whole argument
-- list stays within what the C store sends in one call (2^20).
local RESTORE_CALLS_MAX, RESTORE_AGENTS_MAX = 90000, 10000
local RESTORE_N = 10 -- arguments per call, and per agent
local MS_MAX = 4102444800000 -- wall ms bound, as now_ms
local SCORE_MAX = 1001 * PRIO_SHIFT - 1
local AGENT_STATES = {free = true, paused = true, wrapup = true}
local PRESENT_BATCH = 512 -- records one EXISTS asks for

-- A queue list, checked once per distinct list: a node's parties share a
-- few, and with Redis's data kept the checks are most of the op's time.
local function restore_queues(v, cache)
  if not cache[v] then cache[v] = check_queues(v) end
  return cache[v]
end

-- The call whose arguments start at ARGV[i]: checked, nothing kept (the
-- writes read them again, for the missing calls only).
local function restore_call_check(i, maxseq, seen, qcache)
  local id = check_id(ARGV[i], 'call id', ID_MAX)
  if seen[id] then bad('call ' .. id .. ' given twice') end
  seen[id] = true
  check_id(ARGV[i + 1], 'channel', ID_MAX)
  restore_queues(ARGV[i + 2], qcache)
  check_int(ARGV[i + 3], 'priority', 0, 1000)
  check_int(ARGV[i + 4], 'seq', 1, maxseq)
  check_int(ARGV[i + 5], 'score', 1, SCORE_MAX)
  check_int(ARGV[i + 6], 'entered_ms', 0, MS_MAX)
  check_text(ARGV[i + 7], 'caller number')
  check_text(ARGV[i + 8], 'caller name')
  check_int(ARGV[i + 9], 'ann_ms', 0, MS_MAX)
end

-- The agent at ARGV[i]: a free one needs its free_seq (its score), one in
-- wrapup the end of it; each is ignored in the other states.
local function restore_agent_check(i, maxseq, seen, qcache)
  local id = check_id(ARGV[i], 'agent id', NAME_MAX)
  if seen[id] then bad('agent ' .. id .. ' given twice') end
  seen[id] = true
  check_id(ARGV[i + 1], 'channel', ID_MAX)
  check_text(ARGV[i + 2], 'channel name')
  restore_queues(ARGV[i + 3], qcache)
  local st = ARGV[i + 4]
  if not AGENT_STATES[st] then bad('agent state must be one of free|paused|wrapup') end
  check_text(ARGV[i + 5], 'pause reason')
  check_int(ARGV[i + 6], 'free_seq', st == 'free' and 1 or 0, maxseq)
  check_int(ARGV[i + 7], 'login_ms', 0, MS_MAX)
  check_int(ARGV[i + 8], 'since_ms', 0, MS_MAX)
  check_int(ARGV[i + 9], 'wrapup_until_ms', st == 'wrapup' and 1 or 0, MS_MAX)
end

-- restore's arguments, every one checked (the count exact) before anything
-- is read. Returns maxseq, the counts, and where the agents start.
local function restore_args()
  local maxseq = check_int(ARGV[5], 'maxseq', 0, PRIO_SHIFT - 1)
  local ncalls = check_int(ARGV[6], 'ncalls', 0, RESTORE_CALLS_MAX)
  local at = 7 + RESTORE_N * ncalls
  if #ARGV < at then bad('expected at least ' .. at .. ' arguments, got ' .. #ARGV) end
  local nagents = check_int(ARGV[at], 'nagents', 0, RESTORE_AGENTS_MAX)
  check_nargs(3 + RESTORE_N * (ncalls + nagents))
  local qcache = {}
  local seen = {}
  for i = 7, at - 1, RESTORE_N do restore_call_check(i, maxseq, seen, qcache) end
  seen = {}
  for i = at + 1, #ARGV, RESTORE_N do restore_agent_check(i, maxseq, seen, qcache) end
  return maxseq, ncalls, nagents, at + 1
end

-- The ARGV indexes of the n records (ids at ARGV[first], then every
-- RESTORE_N, keys built by kf) that do not exist. One EXISTS per
-- PRESENT_BATCH records finds a batch all there, the usual case (Redis
-- kept its data); a batch short of some is asked record by record.
local function missing(first, n, kf)
  local out = {}
  for b = 0, n - 1, PRESENT_BATCH do
    local keys = {}
    for j = b, math.min(n, b + PRESENT_BATCH) - 1 do
      keys[#keys + 1] = kf(ARGV[first + RESTORE_N * j])
    end
    if redis.call('EXISTS', unpack(keys)) < #keys then
      for j, k in ipairs(keys) do
        if redis.call('EXISTS', k) == 0 then out[#out + 1] = first + RESTORE_N * (b + j - 1) end
      end
    end
  end
  return out
end

local function argnum(i)
  return fmt(tonumber(ARGV[i]))
end

-- The missing call at ARGV[i] comes back as enter left it while waiting,
-- with its own seq, score and entry time; opos is its position now.
-- RESTORE, not a second ENTERQUEUE: the queue_log has that already.
local function restore_call(i)
  local id, queues = ARGV[i], ARGV[i + 2]
  local c = {queues = queues, seq = argnum(i + 4), score = argnum(i + 5)}
  call_enqueue(id, c)
  local pos = {}
  for n, q in ipairs(split(queues)) do pos[n] = redis.call('ZRANK', qcallers(q), id) + 1 end
  local k = kcall(id)
  redis.call('HSET', k, 'channel', ARGV[i + 1], 'node', NODE, 'queues', queues,
             'priority', argnum(i + 3), 'seq', c.seq, 'score', c.score,
             'entered_ms', argnum(i + 6), 'state', 'waiting', 'pairing', '',
             'opos', table.concat(pos, '&'), 'cid_num', ARGV[i + 7], 'cid_name', ARGV[i + 8])
  if tonumber(ARGV[i + 9]) > 0 then redis.call('HSET', k, 'ann_ms', argnum(i + 9)) end
  redis.call('SADD', KEYS[3], id)
  emit('RESTORE', split(queues)[1], id, nil, {'position', pos[1]})
end

-- The missing agent at ARGV[i] comes back as agent_login left it, in the
-- state given: free with its own free_seq (its place among the free),
-- paused, or in wrapup until wrapup_until_ms. Its call counters start at 0.
local function restore_agent(i)
  local id, queues, st = ARGV[i], ARGV[i + 3], ARGV[i + 4]
  local k, paused, fseq = kagent(id), st == 'paused', argnum(i + 6)
  redis.call('HSET', k, 'channel', ARGV[i + 1], 'chan_name', ARGV[i + 2], 'node', NODE,
             'queues', queues, 'state', st, 'paused', paused and '1' or '0',
             'pause_reason', paused and ARGV[i + 5] or '', 'since_ms', argnum(i + 8),
             'login_ms', argnum(i + 7), 'free_seq', fseq, 'pairing', '',
             'calls_taken', 0, 'talk_ms', 0)
  if st == 'wrapup' then redis.call('HSET', k, 'wrapup_until_ms', argnum(i + 9)) end
  if st == 'free' then agent_enqueue(id, queues, fseq) end
  redis.call('SADD', key('node', NODE, 'agents'), id)
  emit('RESTORE', split(queues)[1], nil, id, {'state', st})
end

-- restore: maxseq ncalls (callid channel queues priority seq score
-- entered_ms cid_num cid_name ann_ms)... nagents (agentid channel chan_name
-- queues state pause_reason free_seq login_ms since_ms wrapup_until_ms)...
-- Redis came back empty: the node re-registers every waiting caller and
-- logged-in agent it serves. Those whose record is missing are re-created
-- with their original places; those present are left alone (then nothing
-- is written: Redis kept its data). {NS}:seq is raised to maxseq, so new
-- arrivals and pairings number above all the node holds. No autopair: the
-- node sweeps after. KEYS[3] {NS}:node:<NODE>:calls
local function op_restore()
  local maxseq, ncalls, nagents, at = restore_args()
  check_key(3, key('node', NODE, 'calls'))
  local calls, agents = missing(7, ncalls, kcall), missing(at, nagents, kagent)
  local seq = num(redis.call('GET', KEYS[1]))
  if maxseq > seq then
    seq = maxseq
    redis.call('SET', KEYS[1], fmt(seq))
  end
  for _, i in ipairs(calls) do restore_call(i) end
  for _, i in ipairs(agents) do restore_agent(i) end
  return {'seq', seq, 'restored_calls', #calls, 'restored_agents', #agents,
          'present_calls', ncalls - #calls, 'present_agents', nagents - #agents}
end

-- ---- reads ------------------------------------------------------------------------------

-- The reply of call_info for call record c (nil: not found).
local function call_view(callid, c)
  if not c then return {'found', 0} end
  local qs = {}
  for _, q in ipairs(split(c.queues)) do
    local r = redis.call('ZRANK', qcallers(q), callid)
    qs[#qs + 1] = {'queue', q, 'position', r and (r + 1) or 0, 'ahead', r or 0,
                   'length', redis.call('ZCARD', qcallers(q))}
  end
  return {'found', 1, 'state', c.state, 'node', c.node, 'seq', tonumber(c.seq),
          'priority', tonumber(c.priority), 'entered_ms', tonumber(c.entered_ms),
          'pairing', c.pairing, 'queues', qs}
end

-- call_info: callid -- the call's state and, per queue, its position.
-- KEYS[3] {NS}:call:<callid>
local function op_call_info()
  check_nargs(1)
  local callid = check_id(ARGV[5], 'call id', ID_MAX)
  check_key(3, kcall(callid))
  return call_view(callid, hgetall(KEYS[3]))
end

-- set_priority: callid priority -- a waiting call's place is recomputed as
-- if it had arrived with that priority at its original time (its seq is
-- kept): a new score in every queue, PRIORITY per queue. NOTFOUND, BADSTATE
-- (not waiting). Replies as call_info, after the change.
-- KEYS[3] {NS}:call:<callid>
local function op_set_priority()
  check_nargs(2)
  local callid = check_id(ARGV[5], 'call id', ID_MAX)
  local prio = check_int(ARGV[6], 'priority', 0, 1000)
  check_key(3, kcall(callid))
  local c = hgetall(KEYS[3])
  if not c then raise('NOTFOUND', 'call ' .. callid .. ' does not exist') end
  if c.state ~= 'waiting' then raise('BADSTATE', 'call ' .. callid .. ' is ' .. c.state) end
  local old = c.priority
  c.score = fmt((1000 - prio) * PRIO_SHIFT + tonumber(c.seq))
  c.priority = fmt(prio)
  redis.call('HSET', KEYS[3], 'priority', c.priority, 'score', c.score)
  for _, q in ipairs(split(c.queues)) do
    redis.call('ZADD', qcallers(q), c.score, callid)
  end
  for _, q in ipairs(split(c.queues)) do
    emit('PRIORITY', q, callid, nil, {'priority', c.priority, 'old_priority', old,
         'position', redis.call('ZRANK', qcallers(q), callid) + 1})
  end
  return call_view(callid, c)
end

-- announce_info: callid -- call_info's reply; a waiting call also records
-- that an announcement starts now (ann_ms, anns), so a restarted node knows
-- when the last one did. KEYS[3] {NS}:call:<callid>
local function op_announce_info()
  check_nargs(1)
  local callid = check_id(ARGV[5], 'call id', ID_MAX)
  check_key(3, kcall(callid))
  local c = hgetall(KEYS[3])
  if c and c.state == 'waiting' then
    redis.call('HSET', KEYS[3], 'ann_ms', NOW)
    c.ann_ms = NOW
    c.anns = redis.call('HINCRBY', KEYS[3], 'anns', 1)
  end
  return call_view(callid, c)
end

-- pairing_info: pairing -- the pairing (as in replies) and its state
-- (`paired`, `bridged`), or state `gone` and no pairing.
-- KEYS[3] {NS}:pairing:<id>
local function op_pairing_info()
  check_nargs(1)
  local pid = check_id(ARGV[5], 'pairing id', ID_MAX)
  check_key(3, kpairing(pid))
  local p = hgetall(KEYS[3])
  if not p then return {'state', 'gone', 'pairings', {}} end
  return {'state', p.state, 'sides', p.sides or '', 'pairings', {pairing_reply(pid, p)}}
end

-- node_pairings: -- the pairings not yet bridged whose caller this node
-- serves (it carries them out). Read after a reconnect, once the node's
-- held writes are sent: a pairing made by an op whose reply was lost with
-- the connection (a sweep, an autopair) is carried out all the same.
-- KEYS[3] {NS}:node:<NODE>:pairings
local function op_node_pairings()
  check_nargs(0)
  check_key(3, key('node', NODE, 'pairings'))
  local out = {}
  for _, pid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local p = hgetall(kpairing(pid))
    if p and p.state == 'paired' and p.caller_node == NODE then
      out[#out + 1] = pairing_reply(pid, p)
    end
  end
  return {'pairings', out}
end

-- queue_info: queue -- length, free agents, the longest wait.
-- KEYS[3] {NS}:queue:<q>:callers
local function op_queue_info()
  check_nargs(1)
  local q = check_id(ARGV[5], 'queue name', NAME_MAX)
  check_key(3, qcallers(q))
  local n = redis.call('ZCARD', KEYS[3])
  local oldest = redis.call('ZRANGE', qarrivals(q), 0, 0)[1]
  local entered = oldest and tonumber(redis.call('HGET', kcall(oldest), 'entered_ms')) or nil
  return {'callers', n, 'agents_free', redis.call('ZCARD', qagents(q)),
          'front', front(KEYS[3]) or '', 'oldest', oldest or '',
          'longest_wait_ms', entered and math.max(0, tonumber(NOW) - entered) or 0}
end

-- ---- dispatch ------------------------------------------------------------------------------

local OPS = {enter = op_enter, leave = op_leave, agent_login = op_agent_login,
             agent_logoff = op_agent_logoff, agent_pause = op_agent_pause,
             agent_ready = op_agent_ready, pair = op_pair, bridged = op_bridged,
             rollback = op_rollback, unlink = op_unlink, rec = op_rec, reap = op_reap,
             reconcile = op_reconcile, restore = op_restore, node_drain = op_node_drain,
             call_info = op_call_info, set_priority = op_set_priority,
             announce_info = op_announce_info, pairing_info = op_pairing_info,
             node_pairings = op_node_pairings,
             queue_info = op_queue_info}

local function main()
  if #KEYS ~= 3 then bad('expected 3 keys, got ' .. #KEYS) end
  local op = OPS[ARGV[1] or '']
  if not op then bad('unknown op ' .. tostring(ARGV[1])) end
  if type(KEYS[1]) ~= 'string' or not KEYS[1]:find('^{[A-Za-z0-9_-]+}:seq$') then
    bad('KEYS[1] must be {NS}:seq')
  end
  P = KEYS[1]:sub(1, -4)
  check_key(2, P .. 'events')
  NOW = fmt(check_int(ARGV[2], 'now_ms', 0, 4102444800000))
  NODE = check_id(ARGV[3], 'node id', ID_MAX)
  MAXLEN = fmt(check_int(ARGV[4], 'events maxlen', 1, 100000000))
  EVK = KEYS[2]
  return op()
end

-- A refusal stops an op from deep in a helper, always before its first
-- write; anything else (a Redis error) propagates as is.
local ok, res = pcall(main)
if ok then return res end
if REFUSAL then return redis.error_reply(REFUSAL) end
error(res)

