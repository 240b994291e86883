package dev.weft.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import static org.apache.spark.sql.functions.col;

/**
 * The documents of a prepare run, read from any Hadoop filesystem into an RDD in input order.
 *
 * <p>Each document has an ordinal, {@code fileIndex << 32 | position in the file}, that orders
 * the corpus as the local prepare does: inputs in the order given; a directory's files (its own,
 * not its subdirectories') and a glob's matches sorted by name; then positions within a file.
 * The RDD's partitions hold ascending, contiguous ordinal ranges, so reading its partitions in
 * order reads the corpus in order.
 */
final class Documents {
    private Documents() {}

    /** One document: its place in the corpus and its text. */
    record Doc(long ordinal, String text) implements Serializable {}

    /** An input file as the manifest records it. */
    record SourceFile(int index, String path, long bytes) implements Serializable {}

    static long ordinal(int fileIndex, long position) {
        return ((long) fileIndex << 32) | position;
    }

    /** The files {@code inputs} name, in corpus order; a missing input or an empty directory is an IllegalArgumentException. */
    static List<SourceFile> discover(List<String> inputs, PrepareOptions.Format format, Configuration conf) {
        List<SourceFile> files = new ArrayList<>();
        for (String input : inputs) {
            try {
                Path p = new Path(input);
                FileSystem fs = p.getFileSystem(conf);
                FileStatus[] matches = fs.globStatus(p);
                if (matches == null || matches.length == 0) {
                    throw new IllegalArgumentException("input " + input + " does not exist (expected a file, a directory or a glob"
                            + " on a Hadoop filesystem)");
                }
                Arrays.sort(matches, Comparator.comparing(s -> s.getPath().toString()));
                for (FileStatus m : matches) {
                    if (m.isDirectory()) {
                        FileStatus[] listed = fs.listStatus(m.getPath(), f -> hasExtension(f.getName(), format));
                        Arrays.sort(listed, Comparator.comparing(s -> s.getPath().toString()));
                        int before = files.size();
                        for (FileStatus f : listed) {
                            if (f.isFile()) files.add(new SourceFile(files.size(), f.getPath().toString(), f.getLen()));
                        }
                        if (files.size() == before) {
                            throw new IllegalArgumentException("input directory " + input + " contains no " + extensions(format) + " files");
                        }
                    } else {
                        files.add(new SourceFile(files.size(), m.getPath().toString(), m.getLen()));
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot list input " + input + ": " + e.getMessage(), e);
            }
        }
        return files;
    }

    private static boolean hasExtension(String name, PrepareOptions.Format format) {
        return switch (format) {
            case TEXT -> name.endsWith(".txt");
            case JSONL -> name.endsWith(".jsonl") || name.endsWith(".json");
            case PARQUET -> name.endsWith(".parquet");
        };
    }

    private static String extensions(PrepareOptions.Format format) {
        return switch (format) {
            case TEXT -> "*.txt";
            case JSONL -> "*.jsonl or *.json";
            case PARQUET -> "*.parquet";
        };
    }

    /** The documents of {@code files}, in corpus order. */
    static JavaRDD<Doc> read(SparkSession spark, List<SourceFile> files, PrepareOptions.Format format, String column) {
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        if (format == PrepareOptions.Format.PARQUET) return parquet(spark, files, column);
        // Several partitions per core, so a slow file does not hold up the rest; never more than there are files.
        int slices = Math.max(1, Math.min(files.size(), sc.defaultParallelism() * 4));
        JavaRDD<SourceFile> rdd = sc.parallelize(files, slices);
        // One Hadoop Configuration per partition: building one parses Hadoop's default XML, tens of ms a file.
        // The files are read one at a time as the partition's consumer asks, not all held at once.
        if (format == PrepareOptions.Format.TEXT) {
            return rdd.mapPartitions(part -> {
                Configuration conf = new Configuration();
                return new Iterator<Doc>() {
                    @Override public boolean hasNext() { return part.hasNext(); }
                    @Override public Doc next() {
                        SourceFile f = part.next();
                        return new Doc(ordinal(f.index(), 0), new String(readAll(f, conf), StandardCharsets.UTF_8));
                    }
                };
            });
        }
        return rdd.mapPartitions(part -> {
            Configuration conf = new Configuration();
            return new Iterator<Doc>() {
                private Iterator<Doc> current = java.util.Collections.emptyIterator();
                @Override public boolean hasNext() {
                    while (!current.hasNext() && part.hasNext()) current = jsonLines(part.next(), column, conf);
                    return current.hasNext();
                }
                @Override public Doc next() {
                    if (!hasNext()) throw new java.util.NoSuchElementException();
                    return current.next();
                }
            };
        });
    }

    private static byte[] readAll(SourceFile f, Configuration conf) {
        Path p = new Path(f.path());
        try (InputStream in = p.getFileSystem(conf).open(p)) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read input " + f.path() + ": " + e.getMessage(), e);
        }
    }

    private static Iterator<Doc> jsonLines(SourceFile f, String column, Configuration conf) {
        ObjectMapper json = new ObjectMapper();
        List<Doc> docs = new ArrayList<>();
        Path p = new Path(f.path());
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getFileSystem(conf).open(p), StandardCharsets.UTF_8))) {
            long line = 0;
            for (String s; (s = r.readLine()) != null; line++) {
                if (s.isBlank()) continue;
                JsonNode node;
                try {
                    node = json.readTree(s);
                } catch (IOException e) {
                    throw new IllegalArgumentException(f.path() + " line " + (line + 1) + " is not JSON: " + e.getMessage().lines().findFirst().orElse(""));
                }
                JsonNode text = node.get(column);
                if (text == null || !text.isTextual()) {
                    throw new IllegalArgumentException(f.path() + " line " + (line + 1) + " has no string field '" + column
                            + "' (choose the field with --column)");
                }
                docs.add(new Doc(ordinal(f.index(), line), text.asText()));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read input " + f.path() + ": " + e.getMessage(), e);
        }
        return docs.iterator();
    }

    /** Parquet rows through Spark SQL, put back into file and row order (Spark plans the files by size). */
    private static JavaRDD<Doc> parquet(SparkSession spark, List<SourceFile> files, String column) {
        Map<String, Integer> index = new HashMap<>();
        for (SourceFile f : files) index.put(new Path(f.path()).toUri().getPath(), f.index());
        Dataset<Row> rows = spark.read().parquet(files.stream().map(SourceFile::path).toArray(String[]::new));
        if (!Arrays.asList(rows.columns()).contains(column)) {
            throw new IllegalArgumentException("the Parquet input has no column '" + column + "' (it has "
                    + String.join(", ", rows.columns()) + "; choose one with --column)");
        }
        return rows.select(col(column).cast("string"), col("_metadata.file_path"), col("_metadata.row_index"))
                .javaRDD()
                .map(r -> new Doc(ordinal(index.get(new Path(r.getString(1)).toUri().getPath()), r.getLong(2)),
                        r.isNullAt(0) ? "" : r.getString(0)))
                .sortBy(Doc::ordinal, true, Math.max(1, spark.sparkContext().defaultParallelism()));
    }
}
