class LaunchConfiguration:
    def __init__(self, variable_name, default=None):
        self.variable_name, self.default = variable_name, default


class PathJoinSubstitution:
    def __init__(self, substitutions):
        self.substitutions = list(substitutions)


class PythonExpression:
    def __init__(self, expression):
        self.expression = list(expression)
