-- streamcore SQL quickstart: `streamcore sql examples/sql/quickstart.sql`
--
-- Bids from the built-in Nexmark auction generator (no external services), counted per
-- auction in 10-second event-time windows; auctions with at least 20 bids in a window are
-- printed as they close.

CREATE TABLE bid (
  auction BIGINT,
  bidder BIGINT,
  price BIGINT,
  channel VARCHAR,
  `dateTime` TIMESTAMP(3),
  -- Event time is `dateTime`; bids arrive at most 4 seconds late.
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
  'connector' = 'nexmark',
  'kind' = 'bid',
  'events.num' = '1000000'
);

CREATE TABLE hot_auctions (
  auction BIGINT,
  bids BIGINT,
  top_price BIGINT,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3)
) WITH ('connector' = 'print');

INSERT INTO hot_auctions
SELECT auction, COUNT(*) AS bids, MAX(price) AS top_price, window_start, window_end
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end
HAVING COUNT(*) >= 20;
