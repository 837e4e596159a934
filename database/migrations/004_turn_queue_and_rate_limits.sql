-- 004: one turn at a time per conversation, and a rate limit shared by every worker.
-- Additive and idempotent; works through Supabase's transaction pooler (no session state: the
-- queue uses row locks and leases, the limiter one function call per request).

-- Arrival order of messages, as committed (the conversation row is locked while a user message
-- is inserted, so a later seq means a later arrival in that conversation).
alter table messages add column if not exists seq bigserial;
-- While a user message waits for its turn or is being answered, the worker handling it renews
-- this lease every few seconds. A worker killed with `kill -9` stops renewing, and its message
-- stops blocking the conversation when the lease expires.
alter table messages add column if not exists lease_expires_at timestamptz;
alter table messages add column if not exists worker text;

-- User rows: received (stored, waiting for its turn) -> running -> answered | failed;
-- rejected when MULTITASK=reject and the conversation was busy.
-- Assistant rows: complete | interrupted | failed.
alter table messages drop constraint if exists messages_status_check;
alter table messages add constraint messages_status_check
  check (status in ('received', 'running', 'answered', 'complete', 'interrupted', 'failed', 'rejected'));

create index if not exists messages_pending_idx on messages (conversation_id, seq)
  where role = 'user' and status in ('received', 'running');

-- Rate limit: a sliding window per key (user, client address), exact across workers because
-- each request's check-and-count runs under the key rows' locks in one statement.
create table if not exists rate_limits (
  key text primary key,
  hits timestamptz[] not null default '{}',
  updated_at timestamptz not null default now()
);

-- Count one request against every key, or none if any key is over its limit. Returns null when
-- the request is allowed, else the seconds until the oldest hit of the fullest key leaves the
-- window (the Retry-After).
create or replace function rate_limit_hit(
  keys text[],
  max_hits integer,
  window_seconds double precision
) returns double precision
language plpgsql
as $$
declare
  k text;
  now_ts timestamptz := clock_timestamp();
  cutoff timestamptz := clock_timestamp() - make_interval(secs => window_seconds);
  recent timestamptz[];
  wait double precision := null;
begin
  insert into rate_limits (key) select unnest(keys) on conflict (key) do nothing;
  -- Lock the rows in a fixed order so two requests sharing keys cannot deadlock.
  perform 1 from rate_limits where key = any (keys) order by key for update;
  for k in select unnest(keys) order by 1 loop
    select coalesce(array_agg(h order by h), '{}') into recent
      from rate_limits r, unnest(r.hits) as h
      where r.key = k and h > cutoff;
    if coalesce(array_length(recent, 1), 0) >= max_hits then
      wait := greatest(
        coalesce(wait, 0),
        extract(epoch from (recent[array_length(recent, 1) - max_hits + 1]
                            + make_interval(secs => window_seconds) - now_ts))
      );
    end if;
    update rate_limits set hits = recent, updated_at = now_ts where key = k;
  end loop;
  if wait is not null then
    return greatest(wait, 0.001);
  end if;
  update rate_limits set hits = array_append(hits, now_ts) where key = any (keys);
  -- Forget idle keys now and then, so the table stays as small as the active users.
  if random() < 0.01 then
    delete from rate_limits where key in (
      select key from rate_limits
      where updated_at < now_ts - make_interval(secs => window_seconds)
      for update skip locked
    );
  end if;
  return null;
end
$$;
