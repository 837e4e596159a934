-- 002: sentence embeddings computed at ingest time.
-- The embedded reranker and the extractive composer compare the question with each sentence of
-- the candidate passages; embedding those sentences per request would cost ~20 ms each on CPU,
-- so ingestion stores them here and the server loads them at start. Idempotent.

create table if not exists sentence_embeddings (
  text_hash text not null,
  embedding_model text not null,
  text text not null,
  embedding vector not null,
  created_at timestamptz not null default now(),
  primary key (text_hash, embedding_model)
);
