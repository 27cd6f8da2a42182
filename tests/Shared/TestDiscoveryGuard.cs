using System;
using System.Linq;
using System.Reflection;
using NUnit.Framework;
using NUnit.Framework.Interfaces;

namespace RwSplit.TestGuards;

/// <summary>
/// Tests must not vanish: NUnit discovers a method only through a test attribute, so a parameterised method whose
/// attribute was lost (it keeps its <c>[ValueSource]</c>/<c>[Values]</c> parameters and compiles) runs nothing and
/// reports nothing. Compiled into every test project (tests/Directory.Build.props); the analyzer rule NUnit1028 (an
/// error in .editorconfig) catches the same at build time.
/// </summary>
[TestFixture]
public sealed class TestDiscoveryGuard
{
    [Test]
    public void Every_public_method_of_a_fixture_with_parameters_is_a_test()
    {
        var assembly = typeof(TestDiscoveryGuard).Assembly;
        var lost = (from type in assembly.GetTypes()
                    where IsFixture(type)
                    from method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                    where !method.IsSpecialName && !IsTest(method) && !IsSetUpOrTearDown(method)
                    where (method.IsPublic && method.GetParameters().Length > 0 && !IsDataSource(type, method))
                          || method.GetParameters().Any(p => p.GetCustomAttributes().OfType<IParameterDataSource>().Any())
                    select $"{type.Name}.{method.Name}").ToList();
        Assert.That(lost, Is.Empty, "public methods with parameters (or with [Values]/[ValueSource] parameters) that no test attribute makes a test: NUnit never runs them; add [Test] (or make helpers private)");
    }

    [Test]
    public void The_assembly_has_tests()
    {
        var tests = typeof(TestDiscoveryGuard).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static))
            .Count(IsTest);
        Assert.That(tests, Is.GreaterThan(1), "a test project whose tests were all lost");
    }

    private static bool IsFixture(Type type)
        => type.GetCustomAttributes<TestFixtureAttribute>().Any()
           || type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static).Any(IsTest);

    private static bool IsTest(MethodInfo method)
        => method.GetCustomAttributes().Any(a => a is ITestBuilder or ISimpleTestBuilder);

    private static bool IsSetUpOrTearDown(MethodInfo method)
        => method.GetCustomAttributes().Any(a => a is SetUpAttribute or TearDownAttribute or OneTimeSetUpAttribute or OneTimeTearDownAttribute);

    /// <summary>A method named by a <c>[TestCaseSource]</c>/<c>[ValueSource]</c> of the same type.</summary>
    private static bool IsDataSource(Type type, MethodInfo method)
        => type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static)
            .SelectMany(m => m.GetCustomAttributes<TestCaseSourceAttribute>().Select(a => a.SourceName)
                .Concat(m.GetParameters().SelectMany(p => p.GetCustomAttributes<ValueSourceAttribute>().Select(a => a.SourceName))))
            .Contains(method.Name);
}
