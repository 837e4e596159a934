-- 003: what the graph did on each turn, node by node (for `chatbot runs` and the inspector).
-- One row per node execution: when it started, how long it took, how it ended, the checkpoint
-- written after its step, and what it decided (route and reason, document ids and scores,
-- model and tokens, error). Replays are recorded too, on their own fork thread. Idempotent.

create table if not exists graph_runs (
  id bigserial primary key,
  conversation_id text not null,
  thread_id text not null,
  run_id uuid not null,
  kind text not null default 'turn',
  parent_checkpoint_id text,
  node text not null,
  task_id text,
  step integer,
  checkpoint_id text,
  started_at timestamptz not null,
  duration_ms double precision,
  status text not null,
  detail jsonb not null default '{}'::jsonb
);
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'graph_runs_kind_check') then
    alter table graph_runs add constraint graph_runs_kind_check check (kind in ('turn', 'replay'));
  end if;
end
$$;
create index if not exists graph_runs_conversation_idx on graph_runs (conversation_id, started_at);
create index if not exists graph_runs_run_idx on graph_runs (run_id);
