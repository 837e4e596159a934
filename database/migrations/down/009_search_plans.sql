-- Undoes 009_search_plans.sql: the search as 008 left it. Not applied by the backend (it reads
-- only database/migrations/*.sql); `python -m bench.retrieval` runs it inside a transaction it
-- rolls back, to measure the search 009 replaced on the same data.
drop function if exists match_documents_hybrid_queries(
  vector, tsquery, tsquery, text[], integer, integer, integer, integer, integer, integer
);
drop function if exists chatbot_vector_hits(vector, text[], integer);

-- 008's search, as it was:
drop function if exists match_documents_hybrid(
  vector, text, text[], integer, integer, integer, integer, integer, integer
);

create or replace function match_documents_hybrid(
  query_embedding vector,
  query_text text,
  agents text[],
  match_count integer default 8,
  candidate_count integer default 40,
  rrf_k integer default 60,
  ef_search integer default 40,
  max_scan_tuples integer default 20000,
  text_budget integer default 500
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
language plpgsql stable
-- Saved on entry and restored on exit: what the body sets below stays inside this call.
set hnsw.iterative_scan = 'relaxed_order'
set hnsw.ef_search = 40
set hnsw.max_scan_tuples = 20000
-- Plan each call with its real owners, so the planner can pick that scope's partial index.
set plan_cache_mode = 'force_custom_plan'
as $$
#variable_conflict use_column
declare
  queries record;
begin
  -- HNSW returns at most ef_search rows per pass: never fewer than the candidates wanted.
  perform set_config('hnsw.ef_search', least(1000, greatest(ef_search, candidate_count))::text, true);
  perform set_config('hnsw.max_scan_tuples', max_scan_tuples::text, true);
  select * into queries from chatbot_text_queries(query_text, text_budget);
  return query
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
  text_selected as materialized (
    select d.id, d.fts
    from documents d
    where queries.match_query is not null
      and d.agent_owner = any (agents)
      and d.fts @@ queries.match_query
    limit greatest(text_budget, candidate_count)
  ),
  text_hits as (
    select t.id, ts_rank_cd(t.fts, queries.rank_query) as rank_score
    from text_selected t
    order by rank_score desc, t.id
    limit candidate_count
  ),
  text_ranked as (
    select h.id, row_number() over (order by h.rank_score desc, h.id) as rnk from text_hits h
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
  limit match_count;
end
$$;
