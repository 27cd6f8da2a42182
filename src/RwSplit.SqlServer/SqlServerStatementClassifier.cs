using System.Collections.Generic;
using RwSplit.Providers;
using RwSplit.Routing;

namespace RwSplit.SqlServer;

/// <summary>T-SQL read for routing by Microsoft's own parser (<see cref="TSqlStatementClassifier"/>, over ScriptDom).</summary>
internal sealed class SqlServerStatementClassifier : StatementClassifier
{
    private readonly TSqlStatementClassifier _classifier;

    /// <exception cref="System.ArgumentException">A declared name is not a procedure name.</exception>
    public SqlServerStatementClassifier(IReadOnlySet<string> readOnlyProcedures)
        : base(readOnlyProcedures)
        => _classifier = new TSqlStatementClassifier(readOnlyProcedures);

    /// <inheritdoc />
    public override StatementClassification Classify(string commandText) => _classifier.Classify(commandText);

    /// <summary>By the parsed name: <c>[dbo].[GetOrders]</c> and <c>dbo.GetOrders</c> are the same procedure.</summary>
    /// <param name="procedureName">The procedure name as given to the command.</param>
    public override StatementClassification ClassifyProcedure(string procedureName) => _classifier.ClassifyProcedure(procedureName);
}
