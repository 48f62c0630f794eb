-- genre-gap: per country, each genre's share of watch time (demand) against
-- its share of the catalog's titles (supply); underserved = demand share /
-- supply share, above 1 when viewers want more of a genre than the catalog
-- offers. Only titles in the catalog count, on both sides; a title counts
-- fully for each of its genres. The catalog has no per-country
-- availability, so supply is the whole catalog.
SELECT
    country,
    genre,
    watch_ms / 3600000 AS watch_hours,
    watch_ms / country_watch_ms AS demand_share,
    genre_titles AS titles,
    genre_titles / (SELECT count() FROM titles FINAL) AS supply_share,
    demand_share / supply_share AS underserved
FROM
(
    SELECT country, genre, watch_ms, country_watch_ms
    FROM
    (
        SELECT country, genre, sum(w) AS watch_ms
        FROM
        (
            SELECT country, w, genres
            FROM
            (
                SELECT country, title_id, sum(wm) AS w
                FROM
                (
                    SELECT country, title_id, watch_ms AS wm
                    FROM playback_minute FINAL
                    WHERE window_start >= @from AND window_start < @to
                    {{- if .has_country}} AND country = @country{{end}}
                )
                GROUP BY country, title_id
            )
            ALL INNER JOIN (SELECT title_id, arrayDistinct(genres) AS genres FROM titles FINAL) USING title_id
        )
        ARRAY JOIN genres AS genre
        GROUP BY country, genre
    )
    ALL INNER JOIN
    (
        SELECT country, sum(w) AS country_watch_ms
        FROM
        (
            SELECT country, title_id, sum(wm) AS w
            FROM
            (
                SELECT country, title_id, watch_ms AS wm
                FROM playback_minute FINAL
                WHERE window_start >= @from AND window_start < @to
                {{- if .has_country}} AND country = @country{{end}}
            )
            GROUP BY country, title_id
        )
        ALL INNER JOIN (SELECT title_id FROM titles FINAL) USING title_id
        GROUP BY country
    ) USING country
)
ALL INNER JOIN
(
    SELECT genre, count() AS genre_titles
    FROM titles FINAL
    ARRAY JOIN arrayDistinct(genres) AS genre
    GROUP BY genre
) USING genre
WHERE country_watch_ms > 0
ORDER BY country, underserved DESC, genre
LIMIT @limit BY country
