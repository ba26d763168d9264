-- Nexmark q0.
-- The Nexmark benchmark's reference Flink SQL (nexmark/nexmark @ 6b3646c,
-- nexmark-flink/src/main/resources/queries/), Apache-2.0, copied verbatim except that the
-- license header and banner comment are removed.
-- Test data for crates/streamcore-sql/tests/parse_nexmark.rs.

CREATE TABLE nexmark_q0 (
  auction  BIGINT,
  bidder  BIGINT,
  price  BIGINT,
  `dateTime`  TIMESTAMP(3),
  extra  VARCHAR
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q0
SELECT auction, bidder, price, `dateTime`, extra FROM bid;
