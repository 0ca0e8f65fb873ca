-- pgvector: the vector, halfvec and HNSW index types.
CREATE EXTENSION IF NOT EXISTS vector;
