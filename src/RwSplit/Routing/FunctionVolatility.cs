namespace RwSplit.Routing;

/// <summary>Whether a database function can change data, as its catalog declares.</summary>
public enum FunctionVolatility
{
    /// <summary>The function's result depends only on its arguments (<c>lower</c>, <c>abs</c>).</summary>
    Immutable = 0,

    /// <summary>The function cannot modify the database (<c>now</c>, <c>current_setting</c>).</summary>
    Stable = 1,

    /// <summary>The function may modify the database or have side effects (<c>nextval</c>, user functions by default).</summary>
    Volatile = 2,
}
