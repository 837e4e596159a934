-- 009: the hybrid search plans once per connection, and reads the question's words once per turn.
-- Additive and idempotent: paste it whole into Supabase's SQL editor, or let the backend apply
-- it at start. `match_documents_hybrid` keeps 008's signature and results.
--
-- Measured on the 258-chunk knowledge base (each turn searches three scopes, nodes/retrieve.py):
-- 008's function cost about 3 ms of database CPU per scope, of which about 1.3 ms planning
-- its whole statement for each call (`plan_cache_mode = force_custom_plan`, so that the
-- planner could pick the scope's partial HNSW index) and about 0.8 ms `chatbot_text_queries`
-- (reading the `fts` statistics), both paid three times per turn for the same question.
--
-- 1. The vector candidates of a scope: a short statement planned for its values, so that the
--    planner picks the scope's partial HNSW index from 008 (the owners and the limit must be
--    known: a generic plan cannot prove the index's predicate, and guesses the limit).
create or replace function chatbot_vector_hits(
  query_embedding vector,
  agents text[],
  candidate_count integer
)
returns table (id bigint, distance double precision)
language plpgsql stable
set plan_cache_mode = 'force_custom_plan'
as $$
#variable_conflict use_column
begin
  return query
  select d.id, d.embedding <=> query_embedding
  from documents d
  where d.agent_owner = any (agents) and d.embedding is not null
  order by d.embedding <=> query_embedding
  limit candidate_count;
end
$$;

-- 2. The search with the question's text queries given (from `chatbot_text_queries`), so a
--    statement searching several scopes computes them once. Its plan, the long one, is cached
--    per connection.
create or replace function match_documents_hybrid_queries(
  query_embedding vector,
  rank_query tsquery,
  match_query tsquery,
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
as $$
#variable_conflict use_column
begin
  -- HNSW returns at most ef_search rows per pass: never fewer than the candidates wanted.
  perform set_config('hnsw.ef_search', least(1000, greatest(ef_search, candidate_count))::text, true);
  perform set_config('hnsw.max_scan_tuples', max_scan_tuples::text, true);
  return query
  with vector_ranked as (
    select v.id, v.distance, row_number() over (order by v.distance) as rnk
    from chatbot_vector_hits(query_embedding, agents, candidate_count) v
  ),
  text_selected as materialized (
    select d.id, d.fts
    from documents d
    where match_query is not null
      and d.agent_owner = any (agents)
      and d.fts @@ match_query
    limit greatest(text_budget, candidate_count)
  ),
  text_hits as (
    select t.id, ts_rank_cd(t.fts, rank_query) as rank_score
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

-- 3. 008's entry point, same arguments and rows, now through the two functions above.
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
language sql stable
as $$
  select m.*
  from chatbot_text_queries(query_text, text_budget) q
  cross join lateral match_documents_hybrid_queries(
    query_embedding, q.rank_query, q.match_query, agents, match_count, candidate_count, rrf_k,
    ef_search, max_scan_tuples, text_budget
  ) m
$$;
