using System;
using BenchmarkDotNet.Attributes;
using RwSplit.PostgreSql;
using RwSplit.Routing;
using RwSplit.SqlServer;

namespace RwSplit.Benchmarks;

/// <summary>
/// Cold classification: what the first execution of a distinct text costs (afterwards it comes from the statement cache).
/// T-SQL goes through Microsoft's parser (ScriptDom); PostgreSQL through RwSplit's own lexer. Exceptions are counted:
/// ScriptDom's generated parser throws and catches internally while it tries alternatives.
/// </summary>
[MemoryDiagnoser]
[ExceptionDiagnoser]
public class ClassificationBenchmarks
{
    private readonly TSqlStatementClassifier _tsql = new(Array.Empty<string>());

    [GlobalSetup]
    public void CheckClassifications()
    {
        // Benchmarks of a classifier that fails closed would measure the failure path: make sure each text is a read.
        Expect(_tsql.Classify(Statements.TSqlShortRead), "T-SQL short");
        Expect(_tsql.Classify(Statements.TSqlLongRead), "T-SQL long");
        Expect(PgStatementClassifier.Classify(Statements.PgShortRead), "PostgreSQL short");
        Expect(PgStatementClassifier.Classify(Statements.PgLongRead), "PostgreSQL long");
    }

    [Benchmark]
    public StatementClassification TSql_ScriptDom_Short() => _tsql.Classify(Statements.TSqlShortRead);

    [Benchmark]
    public StatementClassification TSql_ScriptDom_Long() => _tsql.Classify(Statements.TSqlLongRead);

    [Benchmark]
    public StatementClassification PostgreSql_Lexer_Short() => PgStatementClassifier.Classify(Statements.PgShortRead);

    [Benchmark]
    public StatementClassification PostgreSql_Lexer_Long() => PgStatementClassifier.Classify(Statements.PgLongRead);

    private static void Expect(StatementClassification classification, string what)
    {
        if (classification.Kind != StatementKind.Read)
            throw new InvalidOperationException($"The {what} statement classified as {classification}, not as a read.");
    }
}
