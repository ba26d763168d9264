-- Nexmark q3.
-- The Nexmark benchmark's reference Flink SQL (nexmark/nexmark @ 6b3646c,
-- nexmark-flink/src/main/resources/queries/), Apache-2.0, copied verbatim except that the
-- license header and banner comment are removed.
-- Test data for crates/streamcore-sql/tests/parse_nexmark.rs.

CREATE TABLE nexmark_q3 (
  name  VARCHAR,
  city  VARCHAR,
  state  VARCHAR,
  id  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q3
SELECT
    P.name, P.city, P.state, A.id
FROM
    auction AS A INNER JOIN person AS P on A.seller = P.id
WHERE
    A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
