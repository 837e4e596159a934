-- 001: conversations, messages, documents, hybrid search.
-- Additive and idempotent: safe to run again, safe on a v1 database that already has some of these
-- tables (it only adds what is missing). Paste it whole into Supabase's SQL editor, or let the
-- backend apply it at start.

create extension if not exists vector;

-- Accent- and case-folding for French full text (no dependency on the unaccent extension, so the
-- same SQL runs on the embedded server and on Supabase). The French stemmer needs the accents
-- ("automatisées" -> automatis), so documents are indexed both as written and folded, and a
-- query is matched both ways: a user typing "sequence automatisee" still finds "séquence".
create or replace function chatbot_fold(t text) returns text
language sql immutable parallel safe strict
as $$
  select translate(
    replace(replace(lower(t), 'œ', 'oe'), 'æ', 'ae'),
    'àâäáãåçéèêëíìîïñóòôöõúùûüýÿ',
    'aaaaaaceeeeiiiinooooouuuuyy'
  )
$$;

-- Conversations -------------------------------------------------------------------------------
create table if not exists conversations (
  id text primary key,
  created_at timestamptz not null default now()
);
alter table conversations add column if not exists user_id text;
alter table conversations add column if not exists updated_at timestamptz not null default now();
alter table conversations add column if not exists metadata jsonb not null default '{}'::jsonb;
create index if not exists conversations_user_idx on conversations (user_id, updated_at desc);

-- Messages ------------------------------------------------------------------------------------
create table if not exists messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id text not null references conversations (id) on delete cascade,
  role text not null,
  content text not null,
  created_at timestamptz not null default now()
);
-- agent: audrey | carole | escalate for v2 rows; NULL for rows written by v1 (the seed's
-- monitoring queries tell the versions apart this way).
alter table messages add column if not exists agent text;
alter table messages add column if not exists user_id text;
-- status: user rows received -> answered | failed; assistant rows complete | interrupted | failed.
alter table messages add column if not exists status text not null default 'complete';
alter table messages add column if not exists latency_ms integer;
alter table messages add column if not exists model text;
alter table messages add column if not exists metadata jsonb not null default '{}'::jsonb;

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'messages_agent_check') then
    alter table messages add constraint messages_agent_check
      check (agent is null or agent in ('audrey', 'carole', 'escalate'));
  end if;
  if not exists (select 1 from pg_constraint where conname = 'messages_status_check') then
    alter table messages add constraint messages_status_check
      check (status in ('received', 'answered', 'complete', 'interrupted', 'failed'));
  end if;
end
$$;
create index if not exists messages_conversation_created_idx on messages (conversation_id, created_at);
create index if not exists messages_created_role_idx on messages (created_at, role);

-- Documents -----------------------------------------------------------------------------------
create table if not exists documents (
  id bigserial primary key,
  content text not null,
  metadata jsonb not null default '{}'::jsonb,
  embedding vector(384)
);
alter table documents add column if not exists agent_owner text not null default 'shared';
alter table documents add column if not exists embedding_model text;
alter table documents add column if not exists content_hash text;
alter table documents add column if not exists source text;
alter table documents add column if not exists chunk_index integer;
alter table documents add column if not exists created_at timestamptz not null default now();
alter table documents add column if not exists fts tsvector
  generated always as (
    to_tsvector('french', content) || to_tsvector('french', chatbot_fold(content))
  ) stored;

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'documents_agent_owner_check') then
    alter table documents add constraint documents_agent_owner_check
      check (agent_owner in ('audrey', 'carole', 'shared'));
  end if;
end
$$;
create index if not exists documents_embedding_hnsw_idx
  on documents using hnsw (embedding vector_cosine_ops);
create index if not exists documents_fts_gin_idx on documents using gin (fts);
create index if not exists documents_agent_owner_idx on documents (agent_owner);
create index if not exists documents_source_idx on documents (source, chunk_index);

-- Agent-filtered hybrid search: vector and French full text, fused by reciprocal rank.
-- The iterative scan lets the HNSW index keep walking until `candidate_count` rows pass the
-- agent filter, so a selective filter still yields `match_count` rows (pgvector >= 0.8).
create or replace function match_documents_hybrid(
  query_embedding vector,
  query_text text,
  agents text[],
  match_count integer default 8,
  candidate_count integer default 40,
  rrf_k integer default 60
)
returns table (
  id bigint,
  content text,
  metadata jsonb,
  agent_owner text,
  source text,
  similarity double precision,
  vector_rank integer,
  text_rank integer,
  score double precision
)
language sql stable
set hnsw.iterative_scan = 'relaxed_order'
as $$
  with vector_hits as materialized (
    select d.id, d.embedding <=> query_embedding as distance
    from documents d
    where d.agent_owner = any (agents) and d.embedding is not null
    order by d.embedding <=> query_embedding
    limit candidate_count
  ),
  vector_ranked as (
    select v.id, v.distance, row_number() over (order by v.distance) as rnk from vector_hits v
  ),
  text_query as (
    -- OR the stemmed words, as typed and folded: a chat question rarely has every word of the
    -- passage. Cast, not to_tsquery(): the lexemes are already normalised.
    select nullif(concat_ws(' | ',
      nullif(replace(plainto_tsquery('french', query_text)::text, ' & ', ' | '), ''),
      nullif(replace(plainto_tsquery('french', chatbot_fold(query_text))::text, ' & ', ' | '), '')
    ), '')::tsquery as q
  ),
  text_hits as (
    select d.id, ts_rank_cd(d.fts, t.q) as rank_score
    from documents d, text_query t
    where t.q is not null and d.agent_owner = any (agents) and d.fts @@ t.q
    order by rank_score desc
    limit candidate_count
  ),
  text_ranked as (
    select h.id, row_number() over (order by h.rank_score desc) as rnk from text_hits h
  ),
  fused as (
    select
      coalesce(v.id, t.id) as id,
      v.rnk as vector_rank,
      t.rnk as text_rank,
      coalesce(1.0 / (rrf_k + v.rnk), 0) + coalesce(1.0 / (rrf_k + t.rnk), 0) as score
    from vector_ranked v
    full outer join text_ranked t on t.id = v.id
  )
  select
    d.id, d.content, d.metadata, d.agent_owner, d.source,
    1 - (d.embedding <=> query_embedding) as similarity,
    f.vector_rank::integer, f.text_rank::integer, f.score::double precision
  from fused f
  join documents d on d.id = f.id
  order by f.score desc, f.vector_rank nulls last
  limit match_count
$$;
