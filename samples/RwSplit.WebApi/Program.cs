var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateBuilder(args);
var app = builder.Build();
await app.RunAsync(); // the sample is built in its own change
