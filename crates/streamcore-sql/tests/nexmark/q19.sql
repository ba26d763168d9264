-- Nexmark q19.
-- The Nexmark benchmark's reference Flink SQL (nexmark/nexmark @ 6b3646c,
-- nexmark-flink/src/main/resources/queries/), Apache-2.0, copied verbatim except that the
-- license header and banner comment are removed.
-- Test data for crates/streamcore-sql/tests/parse_nexmark.rs.

CREATE TABLE nexmark_q19 (
    auction  BIGINT,
    bidder  BIGINT,
    price  BIGINT,
    channel  VARCHAR,
    url  VARCHAR,
    `dateTime`  TIMESTAMP(3),
    extra  VARCHAR,
    rank_number  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q19
SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
WHERE rank_number <= 10;
