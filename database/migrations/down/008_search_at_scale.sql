-- Undoes 008_search_at_scale.sql: the schema as 001-007 left it. Not applied by the backend (it
-- reads only database/migrations/*.sql); `python -m bench.retrieval` runs it inside a
-- transaction it rolls back, to measure the search 008 replaced on the same data.
drop index if exists documents_embedding_audrey_scope_hnsw_idx;
drop index if exists documents_embedding_carole_scope_hnsw_idx;
drop index if exists documents_embedding_shared_hnsw_idx;
drop function if exists match_documents_hybrid(
  vector, text, text[], integer, integer, integer, integer, integer, integer
);
drop function if exists chatbot_text_queries(text, integer);

-- 001's search, as it was:
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
